import numpy as np
import pytest

from stylesearch.evaluate import clustering_accuracy, retrieval_scores, score


def test_accuracy_is_invariant_to_cluster_names():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert clustering_accuracy(labels, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert clustering_accuracy(labels, np.array([1, 1, 1, 0, 2, 2])) == pytest.approx(5 / 6)


def test_retrieval_known_answers():
    vectors = np.array([[0.0], [0.1], [5.0], [5.2]])
    labels = np.array([0, 0, 1, 1])
    assert retrieval_scores(vectors, labels, k=1) == {"P@1": 1.0, "mAP@R": 1.0}
    labels = np.array([0, 1, 0, 1])  # every nearest neighbour is the other label
    scores = retrieval_scores(vectors, labels, k=1)
    assert scores["P@1"] == 0.0 and scores["mAP@R"] == 0.0
    # query 0 (label a): ranking b(0.1) a(5.0): R=1, first hit wrong -> AP@R 0
    vectors = np.array([[0.0], [0.1], [5.0], [0.2], [5.1]])
    labels = np.array([0, 1, 0, 0, 1])
    # query 0: neighbours 1(b) 3(a) 2(a) ...; R=2; top-2 = [b, a]: precision@2 = 1/2 at hit -> AP@R = 0.5/2
    ap0 = 0.25
    # query 3: neighbours 1(b,0.1) 0(a,0.2) ...; R=2; top-2 [b, a]: 0.25
    # query 2: neighbours 4(b) 3(a) ...: 0.25; query 1: 0(a) 3(a) ... R=1 -> top-1 miss: 0
    # query 4: neighbours 2(a) 3(a)... R=1: 0
    scores = retrieval_scores(vectors, labels, k=1)
    assert scores["mAP@R"] == pytest.approx((ap0 * 3 + 0 + 0) / 5)


def test_score_separated_and_random_embeddings():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    centres = rng.normal(size=(4, 8)) * 10
    good = score(centres[labels] + rng.normal(size=(40, 8)) * 0.1, labels)
    assert good["ACC"] == good["ARI"] == good["NMI"] == good["mAP@R"] == 100.0
    assert good["P@10"] == 90.0  # only 9 other images per artist: the 10th is always wrong
    bad = score(rng.normal(size=(40, 8)), labels)
    assert bad["NMI"] < 30 and bad["ARI"] < 15 and bad["artists"] == 4


def test_clustering_scores_averaged_over_kmeans_runs():
    """Overlapping styles: k-means' answer depends on its seed, so several runs are averaged
    and their spread reported; retrieval does not depend on it."""
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(6), 8)
    vectors = rng.normal(size=(6, 4))[labels] + rng.normal(size=(48, 4))
    single = [score(vectors, labels, seed=s, restarts=1) for s in range(4)]
    assert len({s["NMI"] for s in single}) > 1 and "NMI sd" not in single[0]
    averaged = score(vectors, labels, seed=0, restarts=1, runs=4)
    for name in ("ACC", "ARI", "NMI"):
        values = [s[name] for s in single]
        assert averaged[name] == pytest.approx(np.mean(values), abs=0.01)
        assert averaged[f"{name} sd"] == pytest.approx(np.std(values), abs=0.01)
    assert averaged["mAP@R"] == single[0]["mAP@R"] and averaged["P@10"] == single[0]["P@10"]
