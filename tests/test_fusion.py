"""Style statistics and the fused embedding (`stylesearch train fuse`)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, ImageDraw

from stylesearch.cli import cli
from stylesearch.embed import Embedder
from stylesearch.errors import StyleSearchError
from stylesearch.evaluate import retrieval_scores
from stylesearch.imaging import load_image
from stylesearch.model.checkpoint import load_encoder
from stylesearch.model.encoder import EncoderConfig, StyleEncoder
from stylesearch.model.resnet import STAGE_STATISTICS
from stylesearch.model.statistics import BLOCKS, StyleStatistics, _directions, _gradient
from stylesearch.train.data import noisy_copy
from stylesearch.train.fusion import fit_map, train_head

from samples import save

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
STATS = StyleStatistics(MEAN, STD)
OFFSET = {name: sum(list(BLOCKS.values())[:i]) for i, name in enumerate(BLOCKS)}


def tensor(*images: Image.Image) -> torch.Tensor:
    x = torch.stack([torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1) for img in images])
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def block(stats: torch.Tensor, name: str) -> torch.Tensor:
    return stats[:, OFFSET[name] : OFFSET[name] + BLOCKS[name]]


def lines(width: int, vertical: bool = True, colour=(0, 0, 0)) -> Image.Image:
    img = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(img)
    for pos in range(6, 60, 14):
        draw.line([(pos, 4), (pos, 60)] if vertical else [(4, pos), (60, pos)], fill=colour, width=width)
    return img


def test_statistics_shape_dtype_and_batch_independence():
    images = [lines(2), lines(6, vertical=False), Image.new("RGB", (64, 64), "white")]
    together = STATS(tensor(*images))
    assert together.shape == (3, StyleStatistics.features) == (3, 374)
    assert torch.isfinite(together).all()  # a blank page too
    alone = torch.cat([STATS(tensor(img)) for img in images])
    assert torch.allclose(together, alone, atol=1e-6)
    assert STATS(tensor(*images).bfloat16()).dtype == torch.bfloat16
    # histograms are square-rooted distributions: unit length
    for name in ("hsv", "lbp", "edges", "turns", "detail", "satlbp", "pairs"):
        assert torch.allclose(block(together, name).square().sum(1), torch.ones(3), atol=1e-5)


def test_separable_sobel_is_the_sobel_convolution():
    grey = torch.rand(2, 17, 23) * 255
    kernel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    reference = torch.nn.functional.conv2d(
        torch.nn.functional.pad(grey[:, None], (1, 1, 1, 1), mode="replicate"), torch.stack([kernel, kernel.T])[:, None]
    )
    grad, magnitude = _gradient(grey)
    assert torch.allclose(grad, reference, atol=1e-3)
    assert torch.allclose(magnitude, reference.square().sum(1).sqrt(), atol=1e-3)



def test_edge_directions_are_exact_on_bin_edges_and_agree_with_atan2_elsewhere():
    """Axis-aligned and diagonal edges, common in drawings, sit on bin edges: each bin is
    closed at its lower end, and opposite gradients give the same orientation."""
    gx = torch.tensor([3.0, 3.0, 0.0, -3.0, -3.0, -3.0, 0.0, 3.0, 0.0])
    gy = torch.tensor([0.0, 3.0, 3.0, 3.0, 0.0, -3.0, -3.0, -3.0, 0.0])
    assert _directions(torch.stack([gx, gy])[None]).tolist() == [[0, 2, 4, 6, 0, 2, 4, 6, 0]]
    angles = torch.rand(10_000) * 2 * np.pi
    grad = torch.stack([angles.cos(), angles.sin()])[None] * (torch.rand(10_000) * 100 + 1)
    reference = (torch.atan2(grad[:, 1], grad[:, 0]) % np.pi / np.pi * 8).floor().clamp(0, 7)
    edge_distance = (reference - torch.atan2(grad[:, 1], grad[:, 0]) % np.pi / np.pi * 8).abs()
    away = (edge_distance > 1e-4) & (edge_distance < 1 - 1e-4)  # not within rounding of a bin edge
    assert away.float().mean() > 0.99
    assert torch.equal(_directions(grad)[away], reference[away].to(torch.uint8))

def test_statistics_measure_line_width_orientation_and_colour():
    thin, thick = STATS(tensor(lines(2), lines(7)))
    widths = torch.arange(1, 7, dtype=torch.float32)
    thin_w, thick_w = (block(s[None], "lines")[0, 2:].square() @ widths for s in (thin, thick))
    assert thick_w > thin_w + 1  # stroke half-widths: thicker pens, deeper strokes
    vertical, horizontal = STATS(tensor(lines(3), lines(3, vertical=False)))
    # vertical strokes: gradients along x (bin 0); horizontal: along y (bin 4 of 8 over 0..pi)
    assert block(vertical[None], "gradients")[0, :8].argmax() == 0
    assert block(horizontal[None], "gradients")[0, :8].argmax() == 4
    red, blue = STATS(tensor(lines(5, colour=(220, 0, 0)), lines(5, colour=(0, 0, 220))))
    assert block(red[None], "hsv").argmax() != block(blue[None], "hsv").argmax()
    assert block(red[None], "colour") > 0.5 > block(thin[None], "colour")
    # outlines: the colour at the edges, whatever fills the shape
    assert block(red[None], "edges").argmax() != block(blue[None], "edges").argmax()


def test_relative_ink_finds_pencil_lines_that_the_black_threshold_misses():
    def coloured(line_colour):
        img = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(img).rectangle([4, 4, 60, 60], fill=(235, 215, 150))  # a light wash
        for pos in range(8, 60, 12):
            ImageDraw.Draw(img).line([(pos, 6), (pos, 58)], fill=line_colour, width=2)
        return img

    pencil, ink = STATS(tensor(coloured((120, 120, 120)), coloured((0, 0, 0))))
    assert block(pencil[None], "lines")[0, 0] == 0  # no pixel below 80 of 255
    assert block(pencil[None], "ink")[0, 0] > 0.1  # but the lines are 60 levels below the wash
    assert float(block(ink[None], "ink")[0, 0]) == pytest.approx(float(block(ink[None], "lines")[0, 0]), abs=0.01)


def test_coarse_block_is_the_fine_one_one_octave_up():
    """Texture as fine as the pooling (a checkerboard of 2 px cells straddling the 2 x 2
    pooling windows) shows at full resolution only: one octave up it averages to grey."""
    rows, cols = np.indices((64, 64))
    checker = Image.fromarray(((((rows + 1) // 2 + (cols + 1) // 2) % 2) * 255).astype(np.uint8)).convert("RGB")
    stats = STATS(tensor(checker))
    fine_strength = block(stats, "gradients")[0, 8:].square()
    coarse_strength = block(stats, "coarse")[0, 8:18].square()
    assert fine_strength[-3:].sum() > 0.9  # strong edges everywhere
    assert coarse_strength[0] > 0.9  # averaged to flat grey one octave up


def disc(outline=None, fill=(230, 60, 60), texture: bool = False) -> Image.Image:
    img = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(img).ellipse([8, 8, 56, 56], fill=fill, outline=outline, width=3 if outline else 0)
    if texture:  # speckled like a screentone or a painted surface
        pixels = np.asarray(img).copy()
        inside = pixels.min(2) < 245
        noise = np.random.default_rng(0).integers(-60, 60, size=pixels.shape)
        pixels[inside] = np.clip(pixels[inside] + noise[inside], 0, 255)
        img = Image.fromarray(pixels.astype(np.uint8))
    return img


def test_outline_detail_turns_and_pairs_tell_drawing_habits_apart():
    outlined, bare, speckled = STATS(tensor(disc(outline=(0, 0, 0)), disc(), disc(texture=True)))
    # outline: the rim of the outlined disc is black (value bin 0) and darker than its inside
    assert block(outlined[None], "outline")[0, 1] > 0.9 and block(outlined[None], "outline")[0, -1] > 0.5
    assert abs(float(block(bare[None], "outline")[0, -1])) < 0.1
    # pairs: black meets red only where there is an outline
    assert block(outlined[None], "pairs").square().max() > 0.9 and block(bare[None], "pairs").square().max() < 0.1
    # detail: a flat fill has 1-2 colours per block, a speckled one many
    flat, busy = block(bare[None], "detail")[0].square(), block(speckled[None], "detail")[0].square()
    assert flat[:2].sum() > 0.9 and busy[3:].sum() > 0.9
    # a full-bleed picture (nothing paper-white) has no rim: no outline contrast, whatever its brightness
    for grey in (40, 200):
        assert float(block(STATS(tensor(Image.new("RGB", (64, 64), (grey, grey, grey)))), "outline")[0, -1]) == 0
    # turns: straight strokes keep their direction; a disc's rim turns, speckle turns everywhere
    straight = block(STATS(tensor(lines(3))), "turns")[0].square()
    assert straight[0] > 0.9 and block(speckled[None], "turns")[0].square()[0] < straight[0] - 0.3


def _labelled_features(rng, artists=6, per=10, embed_dim=4, stats_dim=12):
    """Stats whose first artists - 1 dims carry the artist, plus noise; mu that is pure noise."""
    labels = np.repeat(np.arange(artists), per)
    centres = rng.normal(size=(artists, artists - 1)) * 3
    stats = rng.normal(size=(len(labels), stats_dim))
    stats[:, : artists - 1] += centres[labels]
    mu = rng.normal(size=(len(labels), embed_dim)) * 5
    return np.concatenate([mu, stats], 1).astype(np.float32), [f"a{i}" for i in labels], labels


def test_fit_map_finds_the_discriminant_statistics_and_weighs_mu():
    rng = np.random.default_rng(0)
    features, artists, labels = _labelled_features(rng)
    raw = retrieval_scores(features, labels)["mAP@R"]
    components = 5  # artists - 1
    for cnn_weight in (0.0, 0.5, 1.0):
        for normalise in (False, True):
            fitted = fit_map(features, artists, embed_dim=4, cnn_weight=cnn_weight, normalise=normalise)
            fused = fitted.apply(features)
            assert fitted.weight.shape == (components + (4 if cnn_weight else 0), features.shape[1])
            stats_part, mu_part = fused[:, :components], fused[:, components:]
            if normalise:  # each part of every vector: unit length, times its weight
                assert fitted.parts == ((components, 4) if cnn_weight else (components,))
                assert np.allclose(np.linalg.norm(stats_part, axis=1), 1, atol=1e-5)
                if cnn_weight:
                    assert np.allclose(np.linalg.norm(mu_part, axis=1), cnn_weight, atol=1e-5)
            else:  # centred, mu's share of the variance = cnn_weight squared
                assert fitted.parts == ()
                assert np.allclose(fused.mean(0), 0, atol=1e-3)
                if cnn_weight:
                    share = mu_part.var(0).sum() / stats_part.var(0).sum()
                    assert share == pytest.approx(cnn_weight**2, rel=1e-3)
            assert retrieval_scores(stats_part, labels)["mAP@R"] > max(0.9, raw + 0.2)


def test_the_learned_head_tells_apart_artists_with_two_looks_that_the_linear_map_cannot():
    """Each artist draws in two opposite looks, so every artist's mean is the same: the
    discriminant directions have nothing to go on, the head learns the looks. Scored on works
    it was not fitted on."""
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 160)
    looks = np.tile([1.0, 1.0, -1.0, -1.0], 120)[:, None]
    centres = rng.normal(size=(3, 6)) * 4
    stats = rng.normal(size=(len(labels), 10))
    stats[:, :6] += looks * centres[labels]
    features = np.concatenate([rng.normal(size=(len(labels), 4)), stats], 1).astype(np.float32)
    artists = [f"a{i}" for i in labels]
    fit, test = np.arange(len(labels)) % 2 == 0, np.arange(len(labels)) % 2 == 1  # both looks on each side
    def fitted_on_half():
        return fit_map(features[fit], list(np.array(artists)[fit]), embed_dim=4, dim=8, head_epochs=5, head_hidden=64)

    fitted = fitted_on_half()
    assert fitted.parts == (2, 4, 8) and fitted.part_weights == (1.0, 0.75, 1.25)
    fused = fitted.apply(features[test])
    assert np.allclose(np.linalg.norm(fused[:, 6:], axis=1), 1.25, atol=1e-5)
    held = labels[test]
    head, linear = retrieval_scores(fused[:, 6:], held)["mAP@R"], retrieval_scores(fused[:, :2], held)["mAP@R"]
    assert head > 0.7 > 0.3 > linear and head > retrieval_scores(stats[test], held)["mAP@R"] + 0.2  # raw: ~0.49
    assert np.array_equal(fitted_on_half().apply(features[test]), fused)  # seeded: the same data gives the same model
    assert fit_map(features, artists, embed_dim=4, head_epochs=5, normalise=False).head is None  # raw map: no head
    assert fit_map(features, artists, embed_dim=4, head_epochs=5, head_weight=0).parts == (2, 4)


def test_the_head_reads_raw_features_whatever_their_scale_and_ignores_what_never_varied():
    """The standardisation is folded into the head's first layer: a head fitted on features
    scaled by 100 and shifted gives the same output on those features; a statistic that was
    constant over the fitting images (a library where nobody uses that colour) is left out, so
    a query that has it does not swamp the head."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 6)).astype(np.float32)
    artists = [f"a{i % 4}" for i in range(60)]
    x[:, 5] = 0.25  # never varies
    before = torch.random.get_rng_state()
    plain = train_head(x, artists, hidden=16, dim=4, epochs=1, min_steps=50)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random state is left alone
    scaled = train_head(x * 100 + 50, artists, hidden=16, dim=4, epochs=1, min_steps=50)
    with torch.no_grad():
        out = plain(torch.from_numpy(x))
        assert torch.allclose(scaled(torch.from_numpy(x * 100 + 50)), out, atol=1e-3)
        odd = x.copy()
        odd[:, 5] = 0.9
        assert torch.equal(plain(torch.from_numpy(odd)), out)
        assert plain[0].weight[:, 5].abs().max() == 0


def test_normalised_parts_must_cover_the_fused_output():
    for dim in (10, 0):
        with pytest.raises(ValueError, match="do not add up"):
            EncoderConfig(arch="resnet18", fused_dim=dim, fused_parts=(3, 4))
    assert StyleEncoder(EncoderConfig(fused_dim=7, fused_parts=(3, 4))).fusion_part_weights.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="a fused head needs fused parts"):
        EncoderConfig(fused_dim=7, fused_head=16)


def test_fit_map_needs_three_artists():
    rng = np.random.default_rng(1)
    features, artists, _ = _labelled_features(rng, artists=2)
    with pytest.raises(StyleSearchError, match="at least 3 artists"):
        fit_map(features, artists, embed_dim=4)
    features, artists, _ = _labelled_features(rng, artists=5, per=1)  # a calibre library of one cover per author
    with pytest.raises(StyleSearchError, match="several images"):
        fit_map(features, artists, embed_dim=4)


@pytest.fixture
def painters(tmp_path):
    """4 'artists', each one pen width and colour, drawing 5 different line patterns."""
    root = tmp_path / "painters"
    pens = [(2, (0, 0, 0)), (7, (0, 0, 0)), (3, (200, 30, 30)), (5, (30, 30, 200))]
    for artist, (width, colour) in enumerate(pens):
        for i in range(5):
            img = lines(width, vertical=i % 2 == 0, colour=colour).rotate(15 * i, fillcolor="white")
            save(img, root / f"artist{artist}" / f"work{i}.png")
    return root


def test_cli_fuse_writes_a_model_search_uses(painters, tmp_path, env, tiny_model):
    out = tmp_path / "fused.pt"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "fuse", str(painters), "--init", str(tiny_model), "--out", str(out),
                                 "--version", "7", "--stage-statistics", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)["summary"]
    assert summary["fusion_artists"] == 4 and summary["fusion_images"] == 20 and summary["fusion_dim"] == 3 + 16 + 256
    model, info = load_encoder(out)
    assert info.config.fused_dim == 275 and info.config.output_dim == 275 and info.version == "7"
    embedder = Embedder(out, precision="fp32", workers=1)
    assert embedder.dim == 275
    paths = sorted(painters.rglob("*.png"))
    vectors = np.stack([v for _, v, _ in embedder.stream(paths)])
    labels = np.array([p.parent.name for p in paths])
    # the fitted directions separate the artists; the random tiny network's mu does not
    plain = np.stack([v for _, v, _ in Embedder(tiny_model, precision="fp32", workers=1).stream(paths)])
    assert retrieval_scores(vectors[:, :3], labels)["mAP@R"] > 0.9 > retrieval_scores(plain, labels)["mAP@R"]
    # the map is what the checkpoint says: [directions of the statistics, mu, the learned head],
    # each part of unit length, mu weighted by --cnn-weight (default 0.75), the head by --head-weight (1.25)
    features = torch.from_numpy(np.stack([v for _, v, _ in embedder.stream(paths, features=True)]))
    # [mu, statistics, the CNN's stage statistics (--stage-statistics)], the same
    # from the Embedder's folded trunk as from the model as saved
    assert info.config.stage_statistics and features.shape == (20, 16 + StyleStatistics.features + STAGE_STATISTICS)
    arrays = np.stack([embedder.preprocess(load_image(path, embedder.size)) for path in paths])
    x = (torch.from_numpy(arrays).permute(0, 3, 1, 2).float() - embedder.mean) / embedder.std
    with torch.no_grad():
        assert torch.allclose(model.style_features(x), features, rtol=1e-3, atol=1e-3)
        linear = torch.nn.functional.linear(features, model.fusion.weight, model.fusion.bias)
        learned = model.fusion_head(features)
    assert info.config.fused_parts == (3, 16, 256) and model.fusion_part_weights.tolist() == [1.0, 0.75, 1.25]
    normalize = torch.nn.functional.normalize
    expected = torch.cat([normalize(linear[:, :3]), 0.75 * normalize(linear[:, 3:]), 1.25 * normalize(learned)], 1)
    assert np.allclose(vectors, expected.numpy(), atol=1e-4)
    assert retrieval_scores(vectors[:, 19:], labels)["mAP@R"] > 0.9  # the head alone separates them too
    bf16 = np.stack([v for _, v, _ in Embedder(out, precision="bf16", workers=1).stream(paths)])
    cosine = (bf16 * vectors).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(vectors, axis=1)
    assert cosine.min() > 0.99
    # search and eval run on it
    assert runner.invoke(cli, ["--model", str(out), "index", str(painters)]).exit_code == 0
    found = runner.invoke(cli, ["--model", str(out), "similar", str(paths[0]), "-k", "3", "--json"])
    assert found.exit_code == 0, found.output
    assert all(json.loads(line)["path"].startswith(str(paths[0].parent)) for line in found.output.splitlines())
    # refitting a fused model replaces its map rather than stacking a second one
    again = runner.invoke(cli, ["train", "fuse", str(painters), "--init", str(out), "--out", str(tmp_path / "re.pt"),
                                "--cnn-weight", "0", "--head-epochs", "0"])
    assert again.exit_code == 0, again.output
    assert f"Wrote {tmp_path / 're.pt'}" in again.output  # the plain (not --json) ending works
    linear_model, linear_info = load_encoder(tmp_path / "re.pt")  # statistics' directions only
    assert linear_info.config.fused_parts == (3,) and not hasattr(linear_model, "fusion_head")
    assert not linear_info.config.stage_statistics  # the default
    # bf16 inference keeps the map in float32 as saved (not rounded to bf16 and widened back):
    # a map of the statistics alone, which read no CNN output, gives the fp32 vectors exactly
    statistics_only = [Embedder(tmp_path / "re.pt", precision=p, workers=1) for p in ("fp32", "bf16")]
    fp32, bf16 = (np.stack([v for _, v, _ in e.stream(paths)]) for e in statistics_only)
    assert np.allclose(bf16, fp32, atol=1e-6)
    # --no-normalise: the map's output as it is
    plain_map = runner.invoke(cli, ["train", "fuse", str(painters), "--init", str(out), "--out", str(tmp_path / "raw.pt"),
                                    "--no-normalise"])
    assert plain_map.exit_code == 0, plain_map.output
    raw_model, raw_info = load_encoder(tmp_path / "raw.pt")
    assert raw_info.config.fused_parts == () and not hasattr(raw_model, "fusion_part_weights")
    raw_vectors = np.stack([v for _, v, _ in Embedder(tmp_path / "raw.pt", precision="fp32", workers=1).stream(paths)])
    raw_features = torch.from_numpy(np.stack([v for _, v, _ in
                                              Embedder(tmp_path / "raw.pt", precision="fp32", workers=1).stream(paths, features=True)]))
    assert np.allclose(raw_vectors, torch.nn.functional.linear(raw_features, raw_model.fusion.weight,
                                                               raw_model.fusion.bias).detach().numpy(), atol=1e-3)


def test_a_map_fitted_on_other_statistics_is_refused_with_a_way_out(painters, tmp_path, env, tiny_model):
    """Models fused before the statistics changed must not be read with the new ones."""
    out = tmp_path / "fused.pt"
    assert CliRunner().invoke(cli, ["train", "fuse", str(painters), "--init", str(tiny_model), "--out", str(out),
                                    "--head-epochs", "0"]).exit_code == 0
    blob = torch.load(out, weights_only=True)
    blob["encoder"]["statistics_layout"] = torch.tensor(1)
    torch.save(blob, out)
    result = CliRunner().invoke(cli, ["--model", str(out), "embed", str(painters), "-o", str(tmp_path / "v.npz")])
    assert result.exit_code != 0 and "another version of the style statistics" in result.output
    assert "stylesearch train fuse" in result.output
    # ... and refitting from it works: only its CNN is used
    again = CliRunner().invoke(cli, ["train", "fuse", str(painters), "--init", str(out), "--out", str(tmp_path / "new.pt"),
                                     "--head-epochs", "0"])
    assert again.exit_code == 0, again.output
    assert load_encoder(tmp_path / "new.pt")[1].config.fused_dim == 19


@pytest.mark.parametrize(("args", "message"), [
    (["--shrinkage", "lots"], "--shrinkage must be auto or a number"),
    (["--shrinkage", "1.5"], "--shrinkage must be auto or a number"),
    (["--cnn-weight", "-1"], "--cnn-weight must be 0 or more"),
    (["--cnn-weight", "inf"], "--cnn-weight must be 0 or more"),
    (["--head-weight", "-0.5"], "--head-weight must be 0 or more"),
    (["--head-epochs", "-1"], "--head-epochs must be 0 or more"),
    (["--out", "/nonexistent-folder/x.pt"], "--out: folder not found"),
    (["--dim", "0"], "--dim must be at least 1"),
    (["--synthetic-weight", "0"], "--synthetic-weight must be above 0 and at most 1"),
    (["--synthetic-weight", "2"], "--synthetic-weight must be above 0 and at most 1"),
    (["--jpeg-copies", "96"], "--jpeg-copies takes JPEG qualities from 1 to 95"),
    (["--jpeg-copies", "90,high"], "--jpeg-copies takes JPEG qualities from 1 to 95"),
    (["--noise-copies", "0"], "--noise-copies takes levels from 1 to 32"),
    (["--noise-copies", "2,x"], "--noise-copies takes levels from 1 to 32"),
])
def test_cli_fuse_rejects_bad_options(painters, tmp_path, env, tiny_model, args, message):
    result = CliRunner().invoke(cli, ["train", "fuse", str(painters), "--init", str(tiny_model),
                                      "--out", str(tmp_path / "x.pt"), *args])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "x.pt").exists()


def test_cli_fuse_with_two_artists_is_a_one_line_error(tmp_path, env, tiny_model):
    root = tmp_path / "two"
    for artist in range(2):
        for i in range(3):
            save(lines(2 + 3 * artist, vertical=i % 2 == 0), root / f"a{artist}" / f"{i}.png")
    result = CliRunner().invoke(cli, ["train", "fuse", str(root), "--init", str(tiny_model), "--out", str(tmp_path / "x.pt")])
    assert result.exit_code != 0 and "at least 3 artists" in result.output


def test_cli_fuse_skips_unreadable_images_and_refuses_a_non_model_init(painters, tmp_path, env, tiny_model):
    (painters / "artist0" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = CliRunner().invoke(cli, ["train", "fuse", str(painters), "--init", str(tiny_model), "--out", str(tmp_path / "f.pt"),
                                      "--head-epochs", "0"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image(s)" in result.output and load_encoder(tmp_path / "f.pt")[1].data["fusion_images"] == 20
    not_a_model = tmp_path / "notes.pt"
    not_a_model.write_text("hello")
    refused = CliRunner().invoke(cli, ["train", "fuse", str(painters), "--init", str(not_a_model), "--out", str(tmp_path / "g.pt")])
    assert refused.exit_code != 0 and "not a stylesearch checkpoint" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not (tmp_path / "g.pt").exists()


def test_synthetic_weight_lets_the_real_artists_spread_set_the_map():
    """Many synthetic artists that differ along one statistic and vary along another, a few
    real ones the other way round: weighted equally, the synthetic images decide which
    direction the map keeps, and new real artists are not told apart; with the synthetic
    images down-weighted they are."""
    from stylesearch.train.fusion import discriminant_rows

    rng = np.random.default_rng(3)

    def artists(prefix: str, count: int, spread_dim: int, means_along: np.ndarray):
        means = np.zeros((count, 4))
        means[:, spread_dim] = means_along
        noise = rng.normal(size=(count * 10, 4))
        noise[:, 1 - spread_dim] *= 3  # within-artist variation along the other statistic
        labels = [f"{prefix}/{i}" for i in np.repeat(np.arange(count), 10)]
        stats = np.repeat(means, 10, 0) + noise
        return np.concatenate([rng.normal(size=(len(stats), 2)), stats], 1), labels

    real, real_labels = artists("real", 10, 0, rng.permutation(10) * 4.0)  # 4 apart, spread 3 along the other
    synthetic, synthetic_labels = artists("synthetic", 200, 1, rng.normal(size=200) * 3)
    new, new_labels = artists("real", 5, 0, rng.permutation(5) * 4.0)
    features, labels = np.concatenate([real, synthetic]), real_labels + synthetic_labels
    _, y = np.unique(new_labels, return_inverse=True)

    def new_artists_map(weight: float) -> float:
        fitted = fit_map(features, labels, embed_dim=2, dim=1, cnn_weight=0.0, normalise=False, synthetic_weight=weight)
        return retrieval_scores(fitted.apply(new), y)["mAP@R"]

    assert new_artists_map(0.02) > 0.7 > 0.2 > new_artists_map(1.0)  # seen: 0.79 and 0.09
    assert discriminant_rows(["a/x", "synthetic/1", "b/y"], 0.25).tolist() == [0, 0, 0, 0, 1, 2, 2, 2, 2]
    for artists_only, weight in ((["a/x", "b/y"], 0.25), (["synthetic/1", "synthetic/2"], 0.25), (["a/x", "synthetic/1"], 1.0)):
        assert discriminant_rows(artists_only, weight).tolist() == [0, 1]  # nothing to weigh against


@pytest.mark.parametrize(("option", "amount"), [("--jpeg-copies", 40), ("--noise-copies", 12)])
def test_copies_teach_the_map_to_ignore_compression_and_noise(painters, tmp_path, env, tiny_model, option, amount):
    """Fitted on the drawings' JPEG (or noisy) copies too, the map keeps a drawing and its
    copy closer, relative to other works of its artist, than fitted on the PNGs alone."""
    copied = tmp_path / "copies"
    paths = sorted(painters.rglob("*.png"))
    reader = Embedder(tiny_model, precision="fp32", workers=1)
    for path in paths:
        if option == "--jpeg-copies":
            save(Image.open(path), copied / path.relative_to(painters).with_suffix(".jpg"), quality=amount)
        else:  # at the model's size, as fitting makes them: the model reads exactly this noise
            save(Image.fromarray(noisy_copy(reader.preprocess(load_image(path)), amount)), copied / path.relative_to(painters))
    copies = sorted(copied.rglob("*.*"))
    shifts = {}
    for chosen in ("", str(amount)):
        out = tmp_path / f"fused{chosen}.pt"
        result = CliRunner().invoke(cli, ["train", "fuse", str(painters), "--init", str(tiny_model), "--out", str(out),
                                          "--cnn-weight", "0", "--head-epochs", "0", option, chosen, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["summary"][option[2:].replace("-", "_")] == ([amount] if chosen else [])
        embedder = Embedder(out, precision="fp32", workers=1)
        originals = np.stack([v for _, v, _ in embedder.stream(paths)])
        copy_vectors = np.stack([v for _, v, _ in embedder.stream(copies)])
        labels = np.array([p.parent.name for p in paths])
        same = (labels[:, None] == labels[None]) & ~np.eye(len(paths), dtype=bool)
        spread = np.linalg.norm(originals[:, None] - originals[None], axis=2)[same].mean()
        shifts[chosen] = np.linalg.norm(originals - copy_vectors, axis=1).mean() / spread
    assert shifts[str(amount)] < 0.8 * shifts[""], shifts


def test_noisy_copy_moves_half_the_channels_by_at_most_the_level_the_same_way_every_time():
    grey = np.full((64, 64, 3), 128, np.uint8)
    change = noisy_copy(grey, 2).astype(int) - grey
    assert np.abs(change).max() == 2 and 0.35 < (change != 0).mean() < 0.45  # half chosen, a fifth of those drawn 0
    pixels = np.asarray(lines(3, colour=(128, 0, 255)))
    noisy = noisy_copy(pixels, 2)
    assert np.array_equal(noisy, noisy_copy(pixels, 2)) and not np.array_equal(noisy, noisy_copy(pixels, 3))
    assert not np.array_equal(noisy_copy(grey, 2), noisy_copy(grey[::-1].copy() + 1, 2) - 1)  # seeded by the pixels
    assert noisy.dtype == np.uint8 and noisy[pixels == 255].min() >= 253 and noisy[pixels == 0].max() <= 2  # clipped
