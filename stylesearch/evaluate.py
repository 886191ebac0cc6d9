"""Scores for a style embedding against artist labels, as in the paper (4.2.3) plus retrieval.

Clustering: k-means with k = number of artists, then unsupervised accuracy (best one-to-one
matching of clusters to artists, Hungarian method), ARI and NMI. Retrieval: P@10 and mAP@R
(Musgrave et al. 2020), each image a query against all others, Euclidean distance.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of items whose cluster maps to their label under the best one-to-one matching."""
    table = contingency_matrix(labels, clusters)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / len(labels))


def clustering_scores(labels: np.ndarray, clusters: np.ndarray) -> list[float]:
    """[ACC, ARI, NMI] of one clustering against the labels (fractions)."""
    return [clustering_accuracy(labels, clusters), adjusted_rand_score(labels, clusters),
            normalized_mutual_info_score(labels, clusters)]


def neighbour_order(vectors: np.ndarray) -> np.ndarray:
    """Each row's other rows, nearest first by Euclidean distance (as search ranks them)."""
    sq = (vectors**2).sum(1)
    dist = sq[:, None] + sq[None, :] - 2 * vectors @ vectors.T
    np.fill_diagonal(dist, np.inf)
    return np.argsort(dist, axis=1, kind="stable")[:, :-1]  # drop self (last: +inf)


def retrieval_scores(vectors: np.ndarray, labels: np.ndarray, k: int = 10) -> dict[str, float]:
    """P@k and mAP@R, where R = number of other items with the query's label."""
    order = neighbour_order(vectors)
    same = labels[order] == labels[:, None]
    relevant = (labels[:, None] == labels[None, :]).sum(1) - 1
    p_at_k = same[:, :k].mean(1)
    ap_r = []
    for row, r in zip(same, relevant, strict=True):
        if r == 0:
            continue
        hits = row[:r]
        precision = np.cumsum(hits) / np.arange(1, r + 1)
        ap_r.append(float((precision * hits).sum() / r))
    return {f"P@{k}": float(p_at_k[relevant > 0].mean()), "mAP@R": float(np.mean(ap_r)) if ap_r else 0.0}


def score(vectors: np.ndarray, labels: list | np.ndarray, *, seed: int = 0, restarts: int = 10,
          runs: int = 1) -> dict[str, float]:
    """ACC, ARI, NMI (k-means, k = number of labels) and P@10, mAP@R, in percent like the paper.
    With `runs` > 1 the clustering scores are means over k-means runs seeded seed, seed + 1, ...
    (each keeping the best of `restarts` starts), beside their standard deviations (`NMI sd` ...):
    on a few dozen styles one run's NMI moves by a point or more with the seed alone."""
    vectors = np.asarray(vectors, dtype=np.float64)
    _, y = np.unique(np.asarray(labels), return_inverse=True)
    n_labels = int(y.max()) + 1
    clustering = []
    for run in range(runs):
        clusters = KMeans(n_clusters=n_labels, n_init=restarts, random_state=seed + run).fit_predict(vectors)
        clustering.append(clustering_scores(y, clusters))
    result = dict(zip(("ACC", "ARI", "NMI"), np.mean(clustering, 0), strict=True)) | retrieval_scores(vectors, y)
    if runs > 1:
        result |= {f"{name} sd": value for name, value in zip(("ACC", "ARI", "NMI"), np.std(clustering, 0), strict=True)}
    return {name: round(100 * float(value), 2) for name, value in result.items()} | {"images": len(y), "artists": n_labels}


def colour_histogram(img, bins: int = 8) -> np.ndarray:
    """Baseline: joint RGB histogram (bins^3), L1-normalised, square-rooted (Hellinger)."""
    arr = np.asarray(img.convert("RGB").resize((64, 64)), dtype=np.int64) * bins // 256
    codes = (arr[..., 0] * bins + arr[..., 1]) * bins + arr[..., 2]
    hist = np.bincount(codes.ravel(), minlength=bins**3).astype(np.float32)
    return np.sqrt(hist / hist.sum())


def thumbnail(img, side: int = 16) -> np.ndarray:
    """Baseline: the raw pixels of a tiny thumbnail."""
    return np.asarray(img.convert("RGB").resize((side, side)), dtype=np.float32).ravel() / 255


BASELINES = {"colour histogram": colour_histogram, "raw thumbnail": thumbnail}


def tsne_plot(vectors: np.ndarray, labels: list[str], path, seed: int = 0, side: int = 900) -> None:
    """A t-SNE map of the embeddings coloured by artist (the paper's Table 3), as a PNG."""
    from PIL import Image, ImageDraw
    from sklearn.manifold import TSNE

    xy = TSNE(perplexity=min(30, max(2, len(vectors) // 4)), random_state=seed, init="pca").fit_transform(vectors)
    xy = (xy - xy.min(0)) / np.maximum(np.ptp(xy, 0), 1e-9) * (side - 40) + 20
    from .search.render import palette

    colours = palette(labels)
    names = sorted(colours)
    img = Image.new("RGB", (side, side + 14 * len(names)), "white")
    draw = ImageDraw.Draw(img)
    for (x, y), name in zip(xy, labels, strict=True):
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colours[name])
    for i, name in enumerate(names):
        draw.rectangle((10, side + 14 * i + 2, 20, side + 14 * i + 12), fill=colours[name])
        draw.text((26, side + 14 * i), name, fill="black")
    img.save(path)
