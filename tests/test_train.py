import json
import math
import sqlite3

import numpy as np
import pytest
import torch

from stylesearch.errors import StyleSearchError
from stylesearch.train import losses
from stylesearch.train.config import FinetuneConfig, PretrainConfig
from stylesearch.train.data import (
    Example,
    ImageDataset,
    PKSampler,
    augmentations,
    collate,
    load_examples,
    source_of,
    split_by_artist,
)
from stylesearch.train.lars import LARS
from stylesearch.train.loop import RunOptions

from samples import drawing, save

# --- losses: small cases computed by hand -----------------------------------------------


def test_reconstruction_and_kl_known_values():
    x = torch.zeros(2, 3, 2, 2)
    x_hat = torch.ones(2, 3, 2, 2)
    assert losses.reconstruction(x, x_hat).item() == 12.0  # 12 pixels x 1^2, mean over 2 images
    mu, logvar = torch.zeros(4, 5), torch.zeros(4, 5)
    assert losses.kl_standard_normal(mu, logvar).item() == 0.0
    assert losses.kl_standard_normal(torch.ones(4, 5), logvar).item() == pytest.approx(2.5)  # 0.5 * 5 dims
    # sigma^2 = e: 0.5 * (e - 1 - 1) per dim
    assert losses.kl_standard_normal(mu, torch.ones(4, 5)).item() == pytest.approx(5 * 0.5 * (math.e - 2))


def test_semihard_triplet_picks_the_closest_farther_negative():
    # 1-d embeddings: anchors/positives of label 0 at 0 and 1; negatives (label 1) at 1.5 and 3.
    e = torch.tensor([[0.0], [1.0], [1.5], [3.0]])
    y = torch.tensor([0, 0, 1, 1])
    loss, count = losses.semihard_triplet(e, y, margin=1.0)
    # squared distances: d(0,1)=1; d(0,1.5)=2.25 (semi-hard, chosen over 9); loss 1-2.25+1 = -0.25 -> 0
    # a=1,p=0: d=1; negatives d(1,1.5)=0.25 (<1, not semi-hard), d(1,3)=4 -> 1-4+1 -> 0
    # a=2,p=3: d=2.25; negatives d(1.5,0)=2.25 (not >), d(1.5,1)=0.25 -> none: skipped
    # a=3,p=2: d=2.25; negatives d(3,1)=4, d(3,0)=9 -> 4: 2.25-4+1 = -0.75 -> 0
    assert count == 3 and loss.item() == 0.0
    loss, count = losses.semihard_triplet(e, y, margin=3.0)
    assert count == 3 and loss.item() == pytest.approx((1.75 + 0 + 1.25) / 3)


def test_semihard_triplet_without_candidates_is_zero_and_differentiable():
    e = torch.tensor([[0.0], [5.0]], requires_grad=True)
    loss, count = losses.semihard_triplet(e, torch.tensor([0, 1]))
    assert count == 0 and loss.item() == 0.0
    loss.backward()


def test_arcface_reduces_to_scaled_softmax_without_margin():
    head = losses.ArcFace(2, 2, margin=0.0, scale=10.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    e = torch.tensor([[1.0, 0.0]])
    expected = -torch.log_softmax(torch.tensor([10.0, 0.0]), 0)[0]
    assert head(e, torch.tensor([0])).item() == pytest.approx(expected.item(), rel=1e-5)
    margin = losses.ArcFace(2, 2, margin=1.0, scale=10.0)
    margin.weight.data.copy_(head.weight.data)
    # the true class's angle grows by 1 rad: logit 10 cos(1)
    expected = -torch.log_softmax(torch.tensor([10 * math.cos(1.0), 0.0]), 0)[0]
    # (acos is clamped just inside [-1, 1] for stable gradients: theta starts at ~5e-4, not 0)
    assert margin(e, torch.tensor([0])).item() == pytest.approx(expected.item(), rel=1e-2)
    # bf16 inputs (autocast on CUDA) still give an fp32 loss: the margin maths never mixes dtypes
    low = losses.ArcFace(2, 2).to(torch.bfloat16)
    assert low(e.to(torch.bfloat16), torch.tensor([0])).dtype == torch.float32


def test_supcon_known_value_and_label_sensitivity():
    t = 0.5
    z = torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0]])  # scale is ignored: cosine similarity
    loss = losses.supervised_contrastive(z, torch.tensor([0, 0, 1, 1]), temperature=t).item()
    # each anchor: one positive at cos 1, two negatives at cos 0
    expected = -(1 / t - math.log(math.exp(1 / t) + 2))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert losses.supervised_contrastive(z, torch.tensor([0, 1, 0, 1]), temperature=t).item() > loss


def test_nt_xent_prefers_matching_views():
    z = torch.eye(4)
    aligned = losses.nt_xent(z, z.clone(), temperature=0.5).item()
    shuffled = losses.nt_xent(z, z[[1, 2, 3, 0]], temperature=0.5).item()
    assert aligned < shuffled
    # aligned: each row's positive has sim 2 (1/0.5), the 6 others 0: -log(e^2 / (e^2 + 6))
    assert aligned == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 6)), rel=1e-5)


def test_gmm_prior_kl_is_finite_and_trainable():
    prior = losses.GaussianMixturePrior(3, 4)
    mu, logvar = torch.randn(5, 3, requires_grad=True), torch.zeros(5, 3)
    kl = prior.kl(mu, logvar, losses.reparameterise(mu, logvar))
    assert torch.isfinite(kl) and kl.item() > 0
    kl.backward()
    assert prior.means.grad is not None and mu.grad is not None
    assert torch.allclose(prior.responsibilities(torch.zeros(2, 3)).sum(1), torch.ones(2))


def test_lars_step_known_answer():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    w.grad = torch.tensor([[0.0, 2.0]])  # ||g|| = 2
    LARS([w], lr=1.0, momentum=0.9, weight_decay=0.0, trust=0.1).step()
    # step = lr * trust * ||w|| / ||g|| * g = 0.1 * 2.5 * [0, 2] = [0, 0.5]
    assert torch.allclose(w.data, torch.tensor([[3.0, 3.5]]))
    b = torch.nn.Parameter(torch.tensor([1.0]))
    b.grad = torch.tensor([2.0])
    LARS([b], lr=0.5, trust=0.1).step()  # biases: plain SGD
    assert b.item() == pytest.approx(0.0)


# --- data ----------------------------------------------------------------------------------


def test_pk_sampler_batches():
    labels = [0] * 10 + [1] * 10 + [2] * 3 + [3] * 10
    sampler = PKSampler(labels, p=3, k=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == len(labels) // 12
    for batch in batches:
        drawn = [labels[i] for i in batch]
        assert len(batch) == 12 and len(set(drawn)) == 3 and all(drawn.count(c) == 4 for c in set(drawn))
    assert sampler.short == [2]
    assert list(PKSampler(labels, 3, 4, seed=1)) == batches  # repeatable
    other_rank = list(PKSampler(labels, 3, 4, seed=1, rank=1, world=2))
    assert other_rank != list(PKSampler(labels, 3, 4, seed=1, rank=0, world=2))
    with pytest.raises(StyleSearchError, match="two artists"):
        PKSampler([0, 0, 0], 2, 2)
    fixed = PKSampler(labels, 3, 4, seed=1, batches=7)  # epochs of a set length, whatever the data size
    assert len(fixed) == 7 and len(list(fixed)) == 7


def test_pk_sampler_balances_groups():
    # 20 'synthetic' artists and 2 'real' ones: by artist, real ones would fill 1 slot in 11
    labels = [label for label in range(22) for _ in range(4)]
    groups = {label: "real" if label < 2 else "synthetic" for label in range(22)}
    sampler = PKSampler(labels, p=4, k=2, seed=0, groups=groups)
    for batch in sampler:
        drawn = {labels[i] for i in batch}
        assert len(drawn) == 4 and len(drawn & {0, 1}) == 2
    plain = [{labels[i] for i in batch} for batch in PKSampler(labels, p=4, k=2, seed=0)]
    assert sum(len(b & {0, 1}) for b in plain) < 2 * len(plain)
    assert source_of("emoji/noto") == "emoji" and source_of("alice") == "alice"


def test_examples_from_folders_csv_and_calibre(tmp_path):
    for artist in ("ann", "bob"):
        for i in range(3):
            save(drawing(seed=i), tmp_path / "tree" / artist / "deep" / f"{i}.png")
    tree = load_examples(tmp_path / "tree")
    assert len(tree) == 6 and {e.artist for e in tree} == {"ann", "bob"}
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("path,artist\ntree/ann/deep/0.png,ann\ntree/bob/deep/1.png,bob\n")
    from_csv = load_examples(csv_file)
    assert [e.artist for e in from_csv] == ["ann", "bob"] and from_csv[0].path == str(tmp_path / "tree/ann/deep/0.png")
    library = tmp_path / "calibre"
    library.mkdir()
    db = sqlite3.connect(library / "metadata.db")
    db.executescript(
        """CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, path TEXT, has_cover BOOL);
           CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT);
           CREATE TABLE books_authors_link (id INTEGER PRIMARY KEY, book INTEGER, author INTEGER);
           INSERT INTO books VALUES (1, 'A', 'Ann/A (1)', 1), (2, 'B', 'Bob/B (2)', 1), (3, 'C', 'Bob/C (3)', 0);
           INSERT INTO authors VALUES (1, 'Ann'), (2, 'Bob'), (3, 'Co-author');
           INSERT INTO books_authors_link VALUES (1, 1, 1), (2, 1, 3), (3, 2, 2), (4, 3, 2);"""
    )
    db.commit()
    db.close()
    books = load_examples(library)
    assert {(e.artist, e.path.endswith("cover.jpg")) for e in books} == {("Ann", True), ("Bob", True)}
    with pytest.raises(StyleSearchError, match="not found"):
        load_examples(tmp_path / "nothing")


def test_split_by_artist_holds_out_whole_artists():
    examples = [Example(f"{a}{i}", a) for a in "abcdefghij" for i in range(3)]
    train, test = split_by_artist(examples, 0.2, seed=0)
    assert len({e.artist for e in test}) == 2 and not {e.artist for e in test} & {e.artist for e in train}
    assert len(split_by_artist(examples, 3, seed=0)[1]) == 9


@pytest.mark.parametrize("kind", ["simclr", "style", "none"])
def test_augmentations_give_normalised_tensors(kind):
    out = augmentations(kind, 32, (0.5,) * 3, (0.5,) * 3)(drawing(size=(50, 70)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32 and out.min() >= -1.01 and out.max() <= 1.01



def test_style_crops_see_the_image_at_zoom_times_the_input_size():
    """A 400 px square with a black frame: at zoom 1 every crop is the whole (resized) image,
    frame included on all four sides; at zoom 4 a crop shows at most two sides of it."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (400, 400), "white")
    ImageDraw.Draw(img).rectangle((0, 0, 399, 399), outline="black", width=40)
    for zoom, sides in ((1.0, {4}), (4.0, {0, 1, 2})):
        for _ in range(8):
            out = augmentations("style", 32, (0.0,) * 3, (1.0,) * 3, zoom=zoom)(img)[0]
            dark = [bool((edge < 0.5).all()) for edge in (out[0], out[-1], out[:, 0], out[:, -1])]
            assert sum(dark) in sides, (zoom, dark)

def test_dataset_skips_unreadable_images(tmp_path):
    good = save(drawing(), tmp_path / "g.png")
    bad = tmp_path / "b.png"
    bad.write_bytes(b"junk")
    data = ImageDataset([str(good), str(bad)], [0, 1], augmentations("none", 32, (0.5,) * 3, (0.5,) * 3))
    x, y = collate([data[0], data[1]])
    assert x.shape == (1, 3, 32, 32) and y.tolist() == [0] and data.failed == {str(bad)}
    assert collate([data[1]]) is None


def test_configs_default_to_the_paper():
    f, p = FinetuneConfig(), PretrainConfig()
    assert (f.p, f.k, f.lr, f.epochs, f.margin, f.arc_scale, f.embed_dim) == (20, 20, 1e-4, 40, 1.0, 10.0, 256)
    assert (p.lr, p.batch_size, p.epochs, p.warmup_epochs, p.projection_dim) == (2.4, 2048, 100, 10, 128)
    with pytest.raises(StyleSearchError, match="unknown loss"):
        FinetuneConfig(loss="triplet+arc").terms()
    with pytest.raises(StyleSearchError, match="zoom"):
        FinetuneConfig(zoom=0.5).check()  # crops larger than the image would be mostly padding
    with pytest.raises(StyleSearchError, match="epoch-steps"):
        FinetuneConfig(epoch_steps=-1).check()


# --- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def styles(tmp_path_factory):
    """Two synthetic 'artists': thin black strokes vs thick red strokes, same random subjects."""
    root = tmp_path_factory.mktemp("styles")
    for style in range(2):
        for i in range(16):
            save(drawing(seed=i, style=style, size=(64, 64)), root / f"artist{style}" / f"{i}.png")
    return root


def tiny(loss: str, **kw) -> FinetuneConfig:
    return FinetuneConfig(**{"loss": loss, "epochs": 1, "p": 2, "k": 6, "input_size": 32, "embed_dim": 16,
                             "held_out": 0, "workers": 0, "lr": 3e-4} | kw)


def separation(model_path, root) -> float:
    """mAP@R of the two styles under a checkpoint (inference path)."""
    from stylesearch.embed import Embedder
    from stylesearch.evaluate import score

    examples = load_examples(root)
    embedder = Embedder(model_path, precision="fp32")
    vectors = np.stack([embedder.embed_file(e.path) for e in examples])
    return score(vectors, [e.artist for e in examples])["mAP@R"]


def test_triplet_training_lowers_the_loss_and_separates_styles(styles, tmp_path):
    from stylesearch.train.finetune import finetune

    before = finetune(load_examples(styles), tmp_path / "init.pt", tiny("triplet", epochs=1), run=RunOptions(progress=False, max_steps=1))
    start = separation(tmp_path / "init.pt", styles)
    result = finetune(load_examples(styles), tmp_path / "style.pt", tiny("triplet", epochs=12), run=RunOptions(progress=False))
    losses_by_epoch = [r["triplet"] for r in result["history"]]
    assert np.mean(losses_by_epoch[-3:]) < np.mean(losses_by_epoch[:3])
    assert separation(tmp_path / "style.pt", styles) > start
    assert before["summary"]["train_artists"] == 2


@pytest.mark.parametrize("loss", ["arc", "vae", "gmvae", "arc+vae", "triplet+vae", "supcon", "supcon+vae"])
def test_every_loss_runs_and_writes_a_loadable_checkpoint(styles, tmp_path, loss):
    from stylesearch.model.checkpoint import load_encoder, read_checkpoint
    from stylesearch.train.finetune import finetune

    result = finetune(load_examples(styles), tmp_path / "m.pt", tiny(loss), run=RunOptions(progress=False, max_steps=2))
    assert all(math.isfinite(v) for r in result["history"] for k, v in r.items() if isinstance(v, float))
    _, info = load_encoder(tmp_path / "m.pt")
    assert info.trained and info.data["loss"] == loss
    assert any(k.startswith("decoder.") for k in read_checkpoint(tmp_path / "m.pt")["extra"]) == ("vae" in loss)
    log = [json.loads(line) for line in (tmp_path / "m.pt.log.jsonl").read_text().splitlines()]
    assert log[0]["event"] == "start" and any("loss" in r for r in log)


def test_meanstd_supcon_validated_on_a_separate_set(styles, tmp_path):
    from stylesearch.model.checkpoint import load_encoder
    from stylesearch.train.finetune import finetune

    rows = [f"{e.path},{e.artist}" for e in load_examples(styles)]
    (tmp_path / "val.csv").write_text("path,artist\n" + "\n".join(rows[::4]) + "\n")
    # epochs of 3 batches (validation at fixed step counts), style crops of the whole image
    config = tiny("supcon", pooling="meanstd", validate=str(tmp_path / "val.csv"), epochs=2, epoch_steps=3, zoom=1.0)
    result = finetune(load_examples(styles), tmp_path / "m.pt", config, run=RunOptions(progress=False))
    assert result["summary"]["train_images"] == 32 and result["summary"]["held_out_images"] == 8
    assert len(result["history"]) == 2 and all("mAP@R" in r for r in result["history"])
    log = [json.loads(line) for line in (tmp_path / "m.pt.log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r.get("event") == "epoch"] == [3, 6]
    assert load_encoder(tmp_path / "m.pt")[1].config.pooling == "meanstd"


def test_epoch_loss_is_the_mean_of_the_steps_taken(styles, tmp_path):
    from stylesearch.train.finetune import finetune

    result = finetune(load_examples(styles), tmp_path / "m.pt", tiny("triplet", k=4), run=RunOptions(progress=False, max_steps=1))
    steps = [json.loads(line) for line in (tmp_path / "m.pt.log.jsonl").read_text().splitlines()]
    logged = [r["triplet"] for r in steps if "triplet" in r and r.get("event") is None]
    assert len(logged) == 1 and result["history"][0]["triplet"] == pytest.approx(logged[0], abs=1e-5)


def fused_around(cnn, path, rows: int = 3, seed: int = 0, centre=None):
    """`cnn` fused with a random map of the statistics (`rows` directions) and mu centred on
    `centre`, parts of unit length, mu weighted 0.75: the shape `train fuse` writes."""
    from dataclasses import replace

    from stylesearch.model.checkpoint import save_encoder
    from stylesearch.model.encoder import StyleEncoder
    from stylesearch.model.statistics import StyleStatistics

    dim = cnn.config.embed_dim
    fused = StyleEncoder(replace(cnn.config, fused_dim=rows + dim, fused_parts=(rows, dim)))
    fused.load_state_dict(cnn.state_dict(), strict=False)  # the map's weights are set below
    torch.manual_seed(seed)
    with torch.no_grad():
        fused.fusion.weight.zero_()
        fused.fusion.weight[:rows, dim:] = torch.randn(rows, StyleStatistics.features)
        fused.fusion.weight[rows:, :dim] = torch.eye(dim)
        fused.fusion.bias.zero_()
        fused.fusion.bias[:rows] = torch.randn(rows)
        if centre is not None:
            fused.fusion.bias[rows:] = -centre
        fused.fusion_part_weights.copy_(torch.tensor([1.0, 0.75]))
    save_encoder(path, fused.eval(), name="tiny-fused", version="1", trained=True, half=False)
    return path


def test_complement_gives_the_vector_search_ranks_by(tmp_path):
    from stylesearch.model.checkpoint import load_encoder
    from stylesearch.model.encoder import EncoderConfig, StyleEncoder
    from stylesearch.train.complement import StatisticsPart

    torch.manual_seed(3)
    cnn = StyleEncoder(EncoderConfig(embed_dim=16, input_size=32)).eval()
    centre = torch.randn(16)
    path = fused_around(cnn, tmp_path / "fused.pt", centre=centre)
    prepare = augmentations("none", 32, cnn.config.mean, cnn.config.std)
    x = torch.stack([prepare(drawing(seed=i, style=i % 2, size=(48, 48))) for i in range(6)])
    part = StatisticsPart(path, cnn.config)
    with torch.no_grad():
        mu = cnn.embed(x)
        training = part(x, mu)  # mu centred on the batch's mean
        got = part.combine(part.statistics_part(x), mu, centre)  # on the map's centre: what search computes
        expected = load_encoder(path)[0].embed(x)
    assert got.shape == (6, 19) and torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(training[:, :3], got[:, :3])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as training runs it (CUDA's works alike)
        autocast_training = part(x, mu)
    assert autocast_training.dtype == torch.float32 and torch.allclose(autocast_training, training, atol=1e-6)
    assert torch.allclose(training[:, 3:], 0.75 * torch.nn.functional.normalize(mu - mu.mean(0)), atol=1e-6)


def test_finetune_complementing_a_fused_model(styles, tmp_path):
    from dataclasses import replace

    from stylesearch.evaluate import score
    from stylesearch.model.checkpoint import load_encoder, read_info, save_encoder
    from stylesearch.model.encoder import EncoderConfig, StyleEncoder
    from stylesearch.train.complement import StatisticsPart
    from stylesearch.train.finetune import embed_examples, finetune

    torch.manual_seed(4)
    fused = fused_around(StyleEncoder(EncoderConfig(embed_dim=16, input_size=32)), tmp_path / "fused.pt")
    examples = load_examples(styles)
    (tmp_path / "val.csv").write_text("path,artist\n" + "".join(f"{e.path},{e.artist}\n" for e in examples[::4]))
    config = tiny("triplet", complement=str(fused), validate=str(tmp_path / "val.csv"), epochs=2, epoch_steps=2)
    result = finetune(examples, tmp_path / "m.pt", config, run=RunOptions(progress=False))
    assert result["summary"]["complement"] == read_info(fused).model_id
    assert all(math.isfinite(r["triplet"]) for r in result["history"])
    # the checkpoint is a plain CNN (`train fuse` fits its map), validated on the fused vector
    cnn, info = load_encoder(tmp_path / "m.pt")
    assert info.config.fused_dim == 0
    held = load_examples(tmp_path / "val.csv")
    artists = sorted({e.artist for e in held})
    vectors, labels = embed_examples(cnn, held, [artists.index(e.artist) for e in held], 32, torch.device("cpu"), 0,
                                     StatisticsPart(fused, cnn.config))
    assert vectors.shape[1] == 19
    assert score(vectors, labels, restarts=3)["mAP@R"] == info.data["validation"]["mAP@R"]
    with pytest.raises(StyleSearchError, match="metric loss"):
        tiny("vae", complement=str(fused)).check()
    with pytest.raises(StyleSearchError, match="--complement: model file not found"):
        tiny("triplet", complement=str(tmp_path / "missing.pt")).check()
    with pytest.raises(StyleSearchError, match="--input-size 32"):
        finetune(examples, tmp_path / "x.pt", tiny("triplet", complement=str(fused), input_size=64),
                 run=RunOptions(progress=False, max_steps=1))
    with pytest.raises(StyleSearchError, match="not a model fused"):
        finetune(examples, tmp_path / "x.pt", tiny("triplet", complement=str(tmp_path / "m.pt")),
                 run=RunOptions(progress=False, max_steps=1))
    # two parts, the second a learned head (`train fuse --cnn-weight 0`): no mu part to complement
    headed = StyleEncoder(replace(cnn.config, fused_dim=3 + 16, fused_parts=(3, 16), fused_head=8))
    headed.load_state_dict(cnn.state_dict(), strict=False)
    save_encoder(tmp_path / "headed.pt", headed, name="headed", version="1", trained=True)
    with pytest.raises(StyleSearchError, match="no learned head"):
        finetune(examples, tmp_path / "x.pt", tiny("triplet", complement=str(tmp_path / "headed.pt")),
                 run=RunOptions(progress=False, max_steps=1))
    # a map that also reads the CNN's stage statistics: its statistics part moves with the CNN
    staged = StyleEncoder(replace(cnn.config, fused_dim=3 + 16, fused_parts=(3, 16), stage_statistics=True))
    staged.load_state_dict(cnn.state_dict(), strict=False)
    save_encoder(tmp_path / "staged.pt", staged, name="staged", version="1", trained=True)
    with pytest.raises(StyleSearchError, match="no stage statistics"):
        finetune(examples, tmp_path / "x.pt", tiny("triplet", complement=str(tmp_path / "staged.pt")),
                 run=RunOptions(progress=False, max_steps=1))


def test_resume_continues_where_it_stopped(styles, tmp_path):
    from stylesearch.train.finetune import finetune

    finetune(load_examples(styles), tmp_path / "r.pt", tiny("triplet", epochs=1), run=RunOptions(progress=False))
    state = torch.load(tmp_path / "r.pt.state", weights_only=False)
    assert state["epoch"] == 1
    result = finetune(load_examples(styles), tmp_path / "r.pt", tiny("triplet", epochs=2), run=RunOptions(progress=False, resume=True))
    assert [r["epoch"] for r in result["history"]] == [2]
    with pytest.raises(StyleSearchError, match="no saved state"):
        finetune(load_examples(styles), tmp_path / "new.pt", tiny("triplet"), run=RunOptions(progress=False, resume=True))
    # other settings than the saved state's: a one-line error naming them, nothing overwritten
    before = (tmp_path / "r.pt.state").read_bytes()
    with pytest.raises(StyleSearchError, match=r"other settings \(loss: 'triplet' -> 'supcon', pooling: 'avg' -> 'meanstd'\)"):
        finetune(load_examples(styles), tmp_path / "r.pt", tiny("supcon", pooling="meanstd", epochs=3),
                 run=RunOptions(progress=False, resume=True))
    assert (tmp_path / "r.pt.state").read_bytes() == before


def test_pretrain_then_finetune_from_it(styles, tmp_path):
    from stylesearch.model.checkpoint import read_checkpoint
    from stylesearch.train.finetune import finetune
    from stylesearch.train.pretrain import pretrain

    paths = [e.path for e in load_examples(styles)]
    config = PretrainConfig(epochs=2, batch_size=8, input_size=32, warmup_epochs=1, workers=0)
    result = pretrain(paths, tmp_path / "simclr.pt", config, run=RunOptions(progress=False))
    assert len(result["history"]) == 2 and all(math.isfinite(r["nt_xent"]) for r in result["history"])
    simclr = read_checkpoint(tmp_path / "simclr.pt")["encoder"]
    finetune(load_examples(styles), tmp_path / "ft.pt", tiny("triplet"), init=tmp_path / "simclr.pt", run=RunOptions(progress=False, max_steps=1))
    ft = read_checkpoint(tmp_path / "ft.pt")["encoder"]
    # one Adam step from SimCLR's trunk moves each weight by at most ~lr
    assert torch.allclose(ft["trunk.conv1.weight"].float(), simclr["trunk.conv1.weight"].float(), atol=1e-2)
    # SimCLR's embedding layer (256-d) does not fit this run's 16-d one: a fresh layer instead;
    # a fine-tuned encoder's does fit, so continuing it keeps mu where it was
    assert simclr["fc_mu.weight"].shape != ft["fc_mu.weight"].shape
    finetune(load_examples(styles), tmp_path / "again.pt", tiny("triplet", seed=1), init=tmp_path / "ft.pt",
             run=RunOptions(progress=False, max_steps=1))
    again = read_checkpoint(tmp_path / "again.pt")["encoder"]
    assert torch.allclose(again["fc_mu.weight"].float(), ft["fc_mu.weight"].float(), atol=1e-2)
    finetune(load_examples(styles), tmp_path / "fresh.pt", tiny("triplet", seed=1), run=RunOptions(progress=False, max_steps=1))
    fresh = read_checkpoint(tmp_path / "fresh.pt")["encoder"]
    assert not torch.allclose(fresh["fc_mu.weight"].float(), ft["fc_mu.weight"].float(), atol=1e-2)


def test_cli_train_and_eval(styles, tmp_path, env):
    from click.testing import CliRunner

    from stylesearch.cli import cli

    runner = CliRunner()
    config = tmp_path / "tiny.toml"
    config.write_text('loss = "triplet"\nepochs = 2\np = 2\nk = 6\ninput_size = 32\nembed_dim = 16\nheld_out = 0\nworkers = 0\n')
    out = tmp_path / "cli.pt"
    result = runner.invoke(cli, ["train", "finetune", str(styles), "--config", str(config), "--epochs", "1", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["history"]) == 1  # --epochs beat the file's 2
    result = runner.invoke(cli, ["--model", str(out), "eval", str(styles), "--baseline", "--json", "--tsne", str(tmp_path / "t.png")])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert set(scores) == {next(iter(scores)), "colour histogram", "raw thumbnail"}
    assert all(s["images"] == 32 and s["artists"] == 2 and 0 <= s["NMI"] <= 100 for s in scores.values())
    assert (tmp_path / "t.png").stat().st_size > 1000
    runs = runner.invoke(cli, ["--model", str(out), "eval", str(styles), "--kmeans-runs", "3"])
    assert runs.exit_code == 0 and "±" in runs.output, runs.output  # mean ± spread of the clustering scores
    ours = next(iter(json.loads(runner.invoke(cli, ["--model", str(out), "eval", str(styles), "--kmeans-runs", "3", "--json"]).output).values()))
    # every score whole in the 80-column table; the model's id and the counts in its caption
    assert f"{ours['NMI']}±{ours['NMI sd']}" in runs.output and "32 images of 2 artists" in runs.output, runs.output
    assert runner.invoke(cli, ["--model", str(out), "eval", str(styles), "--kmeans-runs", "0"]).exit_code == 2
    bad = runner.invoke(cli, ["train", "finetune", str(styles), "--loss", "nope", "--out", str(out)])
    assert bad.exit_code == 1 and "unknown loss" in bad.output
    bad = runner.invoke(cli, ["train", "finetune", str(tmp_path / "missing"), "--balance", "nope", "--out", str(out)])
    assert bad.exit_code == 1 and "unknown balance 'nope'" in bad.output  # checked before the data is read
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text("learning_rate = 1\n")
    bad = runner.invoke(cli, ["train", "finetune", str(styles), "--config", str(bad_file), "--out", str(out)])
    assert bad.exit_code == 1 and "unknown keys learning_rate" in bad.output


def test_two_process_distributed_training_with_gloo(styles, tmp_path):
    """torchrun, 2 CPU ranks: DDP averages gradients, rank 0 alone writes the checkpoint."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp.pt"
    config = tmp_path / "ddp.toml"  # (torchrun's own parser would take --p for its --print-completion)
    config.write_text('loss = "triplet"\nepochs = 1\np = 2\nk = 4\ninput_size = 32\nembed_dim = 16\nheld_out = 0\nworkers = 0\n')
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
               "-m", "stylesearch", "train", "finetune", str(styles), "--config", str(config), "--out", str(out), "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file()
    log = [json.loads(line) for line in (tmp_path / "ddp.pt.log.jsonl").read_text().splitlines()]
    assert sum(1 for r in log if r.get("event") == "start") == 1  # only rank 0 logs
