import io
import os
import tracemalloc

import numpy as np
import pytest
from PIL import Image, ImageDraw, features

from stylesearch import imaging
from stylesearch.errors import ImageLoadError

from samples import drawing, encoded, png_header_only, save, with_exif_orientation


@pytest.mark.parametrize(
    "fmt, ext",
    [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif")]
    + ([("AVIF", "avif")] if features.check("avif") else []),
)
def test_every_format_loads_as_rgb(tmp_path, fmt, ext):
    img = drawing(seed=3)
    path = save(img, tmp_path / f"x.{ext}", fmt)
    out = imaging.load_image(path)
    assert out.mode == "RGB" and out.size == img.size
    # Lossless formats give the pixels back exactly; lossy ones stay close.
    error = np.abs(np.asarray(out, dtype=int) - np.asarray(img, dtype=int)).mean()
    assert error < (0.5 if fmt in ("PNG", "BMP", "TIFF") else 40)


def test_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    r, g, b = imaging.load_image(path).getpixel((5, 5))
    assert r > 200 and b < 50


def test_alpha_and_palette_transparency_composite_on_white():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert imaging.decode_image(encoded(rgba, "PNG")).getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("RGBA", (10, 10), (0, 0, 0, 128))
    assert imaging.decode_image(encoded(half, "PNG")).getpixel((0, 0))[0] in range(120, 136)
    palette = Image.new("P", (10, 10), 0)
    palette.putpalette([0, 0, 0] * 256)
    assert imaging.decode_image(encoded(palette, "PNG", transparency=0)).getpixel((0, 0)) == (255, 255, 255)
    la = Image.new("LA", (10, 10), (0, 0))
    assert imaging.decode_image(encoded(la, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_greyscale_and_16_bit_become_8_bit_rgb():
    cmyk = Image.new("CMYK", (10, 10), (0, 255, 255, 0))  # pure red in CMYK
    r, g, b = imaging.decode_image(encoded(cmyk, "JPEG", quality=95)).getpixel((0, 0))
    assert r > 200 and g < 60 and b < 60
    grey = Image.new("L", (10, 10), 77)
    assert imaging.decode_image(encoded(grey, "PNG")).getpixel((0, 0)) == (77, 77, 77)
    deep = Image.fromarray(np.full((10, 10), 40000, dtype=np.uint16))
    value = imaging.decode_image(encoded(deep, "PNG")).getpixel((0, 0))
    assert value == (155, 155, 155)  # 40000 / 257, not clipped to white


def traced_peak(fn) -> int:
    """Peak bytes Python and numpy allocate while `fn` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_16_bit_conversion_needs_a_few_bytes_per_pixel():
    """An 89 MP 16-bit scan (the pixel limit) must not need gigabytes on its way to 8 bits:
    the pixels, the 8-bit result and float64 strips, not float64 copies of it all (24 bytes/px)."""
    deep = Image.fromarray((np.arange(4_000_000) % 65536).astype(np.uint16).reshape(2000, 2000))
    assert traced_peak(lambda: imaging.to_rgb(deep)) < 6 * 4_000_000


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), "white")
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red stripe on the left
    out = imaging.decode_image(with_exif_orientation(img, 6))  # 6 = rotate 90 clockwise to view
    assert out.size == (20, 40)
    assert out.getpixel((10, 2))[0] > 200 and out.getpixel((10, 37))[1] > 200


def test_absurd_exif_does_not_fail_a_good_image():
    img = drawing()
    exif = Image.Exif()
    exif[0x0112] = 9999
    out = imaging.decode_image(encoded(img, "JPEG", exif=exif.tobytes()))
    assert out.size == img.size


def test_jpeg_draft_decodes_big_covers_at_reduced_scale():
    cover = Image.new("RGB", (1600, 2400), (20, 40, 60))
    data = encoded(cover, "JPEG", quality=85)
    assert imaging.decode_image(data, target=224).size == (400, 600)  # 1/4 scale, still >= 224
    assert imaging.decode_image(data).size == (1600, 2400)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not a recognised image"),
        (encoded(drawing(), "PNG")[:200], "corrupt image"),
        (encoded(drawing(), "JPEG")[:300], "corrupt image"),
        (png_header_only(60000, 60000), "decompression bomb"),
        (png_header_only(10000, 10000), "decompression bomb"),  # between 1x and 2x the limit
    ],
    ids=["zero-byte", "garbage", "truncated-png", "truncated-jpeg", "bomb", "bomb-warning-zone"],
)
def test_bad_files_raise_one_line_reasons(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason) as info:
        imaging.load_image(path)
    assert "\n" not in str(info.value)


def test_pillow_bomb_guard_is_on_below_our_limit(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        imaging.decode_image(encoded(Image.new("RGB", (100, 100)), "PNG"))


def test_non_regular_and_missing_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadError, match="not a regular file"):
        imaging.load_image(fifo)  # must not hang waiting for a writer
    with pytest.raises(ImageLoadError, match="not a regular file"):
        imaging.load_image(tmp_path)
    with pytest.raises(ImageLoadError, match="file not found"):
        imaging.load_image(tmp_path / "nope.jpg")


def test_unreadable_file_reports_permission(tmp_path, monkeypatch):
    path = save(drawing(), tmp_path / "locked.png")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(imaging.os, "open", deny)
    with pytest.raises(ImageLoadError, match="permission denied"):
        imaging.load_image(path)


def test_oversized_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "MAX_FILE_BYTES", 100)
    path = save(drawing(), tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="too large"):
        imaging.load_image(path)


def test_oversized_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as fh:
        fh.truncate(imaging.MAX_FILE_BYTES + 1)  # sparse: no disk used

    def load():
        with pytest.raises(ImageLoadError, match="too large"):
            imaging.load_image(path)

    assert traced_peak(load) < 1 << 20  # not 256 MiB read only to be thrown away


def test_a_file_that_grows_while_read_is_read_whole_or_refused(tmp_path, monkeypatch):
    path = tmp_path / "growing.bin"
    path.write_bytes(bytes(1000))
    real_fstat = os.fstat
    monkeypatch.setattr(imaging.os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 400, *real_fstat(fd)[7:])))
    with open(path, "rb") as fh:  # fstat says 400 bytes; 1000 are there by the time it is read
        assert len(imaging.read_limited(fh, 2000)) == 1000
    with open(path, "rb") as fh, pytest.raises(ImageLoadError, match="too large"):
        imaging.read_limited(fh, 800)


def test_a_small_file_costs_its_size_not_the_limit(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(bytes(10_000))
    with open(path, "rb") as fh:
        assert traced_peak(lambda: imaging.read_limited(fh, imaging.MAX_FILE_BYTES)) < 1 << 20


def test_decode_from_bytes_matches_file(tmp_path):
    img = drawing(seed=9)
    path = save(img, tmp_path / "a.png")
    assert np.array_equal(np.asarray(imaging.load_image(path)), np.asarray(imaging.decode_image(path.read_bytes())))
    assert isinstance(imaging.decode_image(io.BytesIO(path.read_bytes()).getvalue()), Image.Image)


def _ink_on_white(seed: int, side: int) -> np.ndarray:
    """Coloured strokes on white paper (samples.drawing's paper is tinted at random)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(img)
    for _ in range(10):
        draw.line([int(v) for v in rng.integers(side // 8, side - side // 8, 4)], fill=tuple(int(v) for v in rng.integers(0, 200, 3)), width=3)
    return np.asarray(img)


@pytest.mark.parametrize("paper", [(236, 228, 212), (245, 240, 225), (222, 222, 222)], ids=["cream", "ivory", "grey-scan"])
def test_tinted_paper_is_made_white(paper):
    """A drawing printed on tinted paper (ink multiplies the paper) reads as the drawing on white."""
    on_white = _ink_on_white(3, 128)
    on_paper = np.rint(on_white * np.array(paper) / 255).astype(np.uint8)
    whitened = imaging.whiten_paper(on_paper)
    assert np.abs(whitened.astype(int) - on_white.astype(int)).max() <= 3
    assert (whitened[:4] == 255).all()  # the rim is paper-white again


@pytest.mark.parametrize("background", [(255, 255, 255), (251, 250, 252), (190, 190, 190), (240, 200, 150), (20, 20, 30)],
                         ids=["white", "near-white", "mid-grey", "orange", "dark"])
def test_other_backgrounds_are_left_as_they_are(background):
    img = _ink_on_white(4, 96)
    pixels = np.where((img == 255).all(axis=2, keepdims=True), np.array(background, np.uint8), img).astype(np.uint8)
    assert (pixels[0, 0] == background).all()
    assert np.array_equal(imaging.whiten_paper(pixels), pixels)


def test_full_bleed_art_is_left_as_it_is():
    """A rim that is not one colour (a painting up to the edge) is not paper."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(200, 250, size=(64, 64, 3), dtype=np.uint8)
    assert np.array_equal(imaging.whiten_paper(pixels), pixels)


def test_search_reads_a_drawing_on_tinted_paper_as_on_white(embedder):
    on_white = _ink_on_white(5, 256)
    on_paper = np.rint(on_white * np.array([236, 228, 212]) / 255).astype(np.uint8)
    white, paper = (embedder.preprocess(Image.fromarray(p)) for p in (on_white, on_paper))
    assert np.abs(white.astype(int) - paper.astype(int)).max() <= 3
    vectors = embedder.embed_images([Image.fromarray(on_white), Image.fromarray(on_paper), Image.fromarray(_ink_on_white(6, 256))])
    assert np.linalg.norm(vectors[0] - vectors[1]) < 0.1 * np.linalg.norm(vectors[0] - vectors[2])
