import numpy as np
import pytest
import torch

from stylesearch.embed import Embedder
from stylesearch.errors import StyleSearchError
from stylesearch.model.checkpoint import load_encoder, read_info, save_encoder
from stylesearch.model.encoder import EncoderConfig, StyleEncoder

from conftest import TINY
from samples import drawing, save


def test_encoder_gives_mu_and_logvar_of_the_configured_size():
    model = StyleEncoder(TINY).eval()
    mu, logvar = model(torch.rand(2, 3, 32, 32))
    assert mu.shape == logvar.shape == (2, 16)
    assert torch.equal(model.embed(torch.zeros(1, 3, 32, 32)), model(torch.zeros(1, 3, 32, 32))[0])


def test_paper_defaults():
    cfg = EncoderConfig()
    assert (cfg.arch, cfg.embed_dim, cfg.input_size, cfg.pooling) == ("resnet18", 256, 224, "avg")


def test_meanstd_pooling_is_the_statistics_of_every_stage():
    from stylesearch.model.resnet import channel_stats

    model = StyleEncoder(EncoderConfig(embed_dim=16, input_size=32, pooling="meanstd")).eval()
    x = torch.rand(2, 3, 32, 32)
    features = model.trunk(x)
    assert features.shape == (2, 2 * (3 + 64 + 128 + 256 + 512))
    assert torch.allclose(features[:, :6], channel_stats(x))
    assert torch.allclose(features[:, 3:6], x.std(dim=(2, 3), unbiased=False), atol=1e-3)
    with pytest.raises(ValueError, match="unknown pooling"):
        StyleEncoder(EncoderConfig(pooling="max"))


def test_stage_statistics_ride_beside_the_pooled_features_mu_keeps():
    """`train fuse --stage-statistics`: the same CNN, mu unchanged, the stage statistics after
    the pooled features; a meanstd-pooled CNN has them as its pooling already."""
    torch.manual_seed(0)
    plain = StyleEncoder(EncoderConfig(embed_dim=16, input_size=32)).eval()
    staged = StyleEncoder(EncoderConfig(embed_dim=16, input_size=32, stage_statistics=True)).eval()
    staged.load_state_dict(plain.state_dict())  # no new weights
    x = torch.rand(2, 3, 32, 32)
    features = staged.style_features(x)
    assert features.shape == (2, 16 + 374 + 1926)
    assert torch.allclose(features[:, :16 + 374], plain.style_features(x), atol=1e-5)
    meanstd = StyleEncoder(EncoderConfig(embed_dim=16, input_size=32, pooling="meanstd")).eval()
    meanstd.trunk.load_state_dict(plain.trunk.state_dict())
    assert torch.allclose(features[:, 16 + 374:], meanstd.trunk(x), atol=1e-5)
    assert torch.allclose(staged(x)[0], plain(x)[0], atol=1e-6)  # training's forward reads the pooled part only
    with pytest.raises(ValueError, match="stage statistics"):
        EncoderConfig(pooling="meanstd", stage_statistics=True)


def test_checkpoint_round_trip_keeps_metadata_and_weights(tmp_path):
    torch.manual_seed(0)
    model = StyleEncoder(TINY).eval()
    info = save_encoder(tmp_path / "m.pt", model, name="demo", version="3", trained=True, data={"artists": 7}, half=False)
    loaded, loaded_info = load_encoder(tmp_path / "m.pt")
    assert loaded_info.model_id == info.model_id and loaded_info.model_id.startswith("demo-3-")
    assert loaded_info.config == TINY and loaded_info.data == {"artists": 7} and loaded_info.trained
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(loaded.embed(x), model.embed(x))
    blob = torch.load(tmp_path / "m.pt", weights_only=True)  # loads with the safe unpickler
    assert blob["meta"]["config"]["input_size"] == 32
    assert read_info(tmp_path / "m.pt").model_id == info.model_id


def test_half_precision_storage_changes_id_but_barely_the_embedding(tmp_path):
    torch.manual_seed(0)
    model = StyleEncoder(TINY).eval()
    full = save_encoder(tmp_path / "f.pt", model, name="m", version="1", trained=False, half=False)
    half = save_encoder(tmp_path / "h.pt", model, name="m", version="1", trained=False, half=True)
    assert full.model_id != half.model_id
    assert (tmp_path / "h.pt").stat().st_size < 0.6 * (tmp_path / "f.pt").stat().st_size
    x = torch.rand(4, 3, 32, 32)
    a, b = model.embed(x), load_encoder(tmp_path / "h.pt")[0].embed(x)
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.999


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_bad_or_missing_checkpoint_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(StyleSearchError, match="model"):
        load_encoder(path)


def test_plain_torch_file_is_not_taken_for_a_model(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(StyleSearchError, match="not a stylesearch-checkpoint"):
        load_encoder(tmp_path / "other.pt")


@pytest.mark.parametrize("pooling", ["avg", "meanstd"])
def test_embedder_fused_model_matches_plain_encoder(tiny_model, tmp_path, pooling):
    path = tiny_model
    if pooling != "avg":
        torch.manual_seed(0)
        trained = StyleEncoder(EncoderConfig(embed_dim=16, input_size=32, pooling=pooling)).train()
        trained(torch.rand(8, 3, 32, 32))  # non-trivial BatchNorm running statistics
        path = tmp_path / "meanstd.pt"
        save_encoder(path, trained.eval(), name="meanstd", version="1", trained=False, half=False)
    model, _ = load_encoder(path)
    embedder = Embedder(path, precision="fp32")
    images = [drawing(seed=i, style=i) for i in range(3)]
    arrays = np.stack([embedder.preprocess(img) for img in images])
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255
    mean, std = torch.tensor(TINY.mean).view(1, 3, 1, 1), torch.tensor(TINY.std).view(1, 3, 1, 1)
    expected = model.embed((x - mean) / std).detach().numpy()
    assert np.allclose(embedder.embed_images(images), expected, atol=1e-4)


def test_bf16_stays_close_to_fp32(tiny_model):
    images = [drawing(seed=i, style=i) for i in range(6)]
    fp32 = Embedder(tiny_model, precision="fp32").embed_images(images)
    bf16 = Embedder(tiny_model, precision="bf16").embed_images(images)
    cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.99


def test_preprocess_centre_crops_to_input_size(embedder):
    tall = drawing(size=(60, 200))
    out = embedder.preprocess(tall)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_stream_goes_on_past_bad_files(tmp_path, embedder):
    good = [save(drawing(seed=i), tmp_path / f"{i}.png") for i in range(5)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    results = {str(p): (v, e) for p, v, e in embedder.stream(good[:2] + [bad] + good[2:])}
    assert len(results) == 6
    assert results[str(bad)][0] is None and "not a recognised image" in results[str(bad)][1]
    vectors = np.stack([results[str(p)][0] for p in good])
    assert vectors.shape == (5, 16) and np.isfinite(vectors).all()
    assert np.allclose(vectors, embedder.embed_images([drawing(seed=i) for i in range(5)]), atol=1e-2)


def test_unknown_device_and_missing_cuda_are_clear(tiny_model):
    with pytest.raises(StyleSearchError, match="unknown device"):
        Embedder(tiny_model, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(StyleSearchError, match="no CUDA GPU"):
            Embedder(tiny_model, device="cuda")


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_trunk_is_torchvision_resnet_without_importing_it(arch):
    """Our trunk takes torchvision's weights key for key and computes the same features."""
    import torchvision

    from stylesearch.model.resnet import TRUNKS, ResNetTrunk

    reference = getattr(torchvision.models, arch)(weights=None).eval()
    reference.fc = torch.nn.Identity()
    ours = ResNetTrunk(TRUNKS[arch]).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_inference_path_does_not_import_torchvision(tiny_model):
    import subprocess
    import sys

    code = (
        "import sys; from stylesearch.embed import Embedder; "
        f"Embedder({str(tiny_model)!r}).embed_images([__import__('PIL.Image').Image.new('RGB', (40, 40))]); "
        "print('torchvision' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
