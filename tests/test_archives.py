import io
import os
import re
import struct
import tempfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from stylesearch import archives, imaging
from stylesearch.errors import ImageLoadError

from samples import cbz, drawing, encoded, rar4, save

RED = encoded(Image.new("RGB", (30, 40), (255, 0, 0)), "PNG")
BLUE = encoded(Image.new("RGB", (30, 40), (0, 0, 255)), "PNG")


def colour(img: Image.Image) -> str:
    r, g, b = img.getpixel((5, 5))
    return "red" if r > 200 else "blue" if b > 200 else "other"


def test_natural_sort_puts_page2_before_page10():
    names = ["p10.jpg", "p2.jpg", "P1b.jpg", "p1a.jpg"]
    assert sorted(names, key=archives.natural_key) == ["p1a.jpg", "P1b.jpg", "p2.jpg", "p10.jpg"]


def test_cbz_cover_is_first_image_in_natural_order(tmp_path):
    path = cbz(tmp_path / "book.cbz", {"page10.png": BLUE, "notes.txt": b"hi", "page2.png": RED})
    assert colour(imaging.load_image(path)) == "red"


def test_cbz_skips_os_clutter_and_nested_archives(tmp_path):
    nested = cbz(tmp_path / "inner.cbz", {"a.png": BLUE}).read_bytes()
    members = {"__MACOSX/._001.png": BLUE, ".hidden/000.png": BLUE, "000.cbz": nested, "chapter/001.png": RED}
    assert colour(imaging.load_image(cbz(tmp_path / "b.cbz", members))) == "red"


def test_cbz_reads_in_memory_and_ignores_path_traversal_names(tmp_path):
    before = set(os.listdir(tmp_path))
    path = cbz(tmp_path / "evil.cbz", {"../../escape.png": RED, "/abs/x.png": BLUE})
    assert colour(imaging.load_image(path)) in ("red", "blue")
    assert set(os.listdir(tmp_path)) == before | {"evil.cbz"}
    assert not (tmp_path.parent.parent / "escape.png").exists()


def test_cbr_stored_cover_reads_without_unrar(tmp_path):
    path = rar4(tmp_path / "book.cbr", {"p10.png": BLUE, "p02.png": RED})
    assert colour(imaging.load_image(path)) == "red"


def test_cbr_that_is_really_a_zip_still_opens(tmp_path):
    path = cbz(tmp_path / "misnamed.cbr", {"1.png": RED})
    assert colour(imaging.load_image(path)) == "red"


def test_compressed_cbr_without_backend_names_the_missing_tool(tmp_path, monkeypatch):
    import rarfile

    def no_tool(*args, **kwargs):
        raise rarfile.RarCannotExec("Cannot find working tool")

    monkeypatch.setattr(rarfile, "tool_setup", no_tool)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = rar4(tmp_path / "packed.cbr", {"1.png": RED}, method=0x33)
    with pytest.raises(ImageLoadError, match="unrar backend: install unrar, unar or bsdtar"):
        imaging.load_image(path)
    assert not os.listdir(tmp_path / "tmp")  # rarfile's temporary copy of the member is not left behind


def test_pdf_cover_renders_first_page(tmp_path):
    pytest.importorskip("pypdfium2")
    first, second = Image.new("RGB", (200, 300), (255, 0, 0)), Image.new("RGB", (200, 300), (0, 0, 255))
    path = tmp_path / "book.pdf"
    first.save(path, save_all=True, append_images=[second])
    cover = imaging.load_image(path, target=224)
    assert colour(cover) == "red" and min(cover.size) >= 224


def test_pdf_page_of_absurd_shape_renders_within_the_pixel_cap(tmp_path):
    """Found by the hypothesis fuzz target: a 100000 x 20 pt page was rendered 8x up, 800000 x
    160 px (512 MB), to give its short side 448 px; a few bytes of MediaBox cost gigabytes."""
    pytest.importorskip("pypdfium2")
    buf = io.BytesIO()
    Image.new("RGB", (24, 32), (255, 0, 0)).save(buf, "PDF")
    path = tmp_path / "strip.pdf"
    path.write_bytes(re.sub(rb"/MediaBox \[[^\]]*\]", b"/MediaBox [ 0 0 100000 20 ]", buf.getvalue()))
    cover = imaging.load_image(path, target=224)
    assert cover.width * cover.height <= archives.PDF_MAX_PIXELS


@pytest.mark.parametrize(
    "members, encrypted, reason",
    [
        ({"readme.txt": b"x"}, False, "no images"),
        ({"1.png": RED}, True, "encrypted"),
        ({"1.png": b"\0" * (8 * 1024 * 1024)}, False, "compression ratio"),
    ],
    ids=["no-images", "encrypted", "zip-bomb"],
)
def test_hostile_cbz_gives_one_line_reason(tmp_path, members, encrypted, reason):
    path = cbz(tmp_path / "bad.cbz", members, encrypted=encrypted)
    with pytest.raises(ImageLoadError, match=reason):
        imaging.load_image(path)


def test_too_many_members_and_oversized_members_are_refused(tmp_path, monkeypatch):
    path = cbz(tmp_path / "many.cbz", {f"{i}.png": RED for i in range(30)})
    monkeypatch.setattr(archives, "MAX_MEMBERS", 10)
    with pytest.raises(ImageLoadError, match="too many members"):
        imaging.load_image(path)
    monkeypatch.setattr(archives, "MAX_MEMBERS", 100)
    monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 50)
    with pytest.raises(ImageLoadError, match="too large"):
        imaging.load_image(path)


def test_truncated_and_fake_archives(tmp_path):
    good = cbz(tmp_path / "good.cbz", {"1.png": encoded(drawing(), "PNG")}).read_bytes()
    for name, data in {"trunc.cbz": good[: len(good) // 2], "fake.cbz": b"PK\x03\x04garbage", "fake.cbr": b"Rar!\x1a\x07\x00xx"}.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageLoadError) as info:
            imaging.load_image(tmp_path / name)
        assert "\n" not in str(info.value)


def test_cover_image_matches_the_page(tmp_path):
    page = drawing(seed=5)
    path = cbz(tmp_path / "x.cbz", {"01.png": encoded(page, "PNG")})
    assert np.array_equal(np.asarray(imaging.load_image(path)), np.asarray(page))
    assert np.array_equal(np.asarray(imaging.load_image(save(page, tmp_path / "x.png"))), np.asarray(page))


def _zip_bytes(name: str, data: bytes) -> bytearray:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, data)
    return bytearray(buf.getvalue())


def _nameless_member() -> bytes:
    """A central directory entry with an empty name (zipfile's is_dir() then fails)."""
    raw = _zip_bytes("a", b"x")
    at = raw.find(b"PK\x01\x02")
    raw[at + 28 : at + 30] = struct.pack("<H", 0)
    del raw[at + 46]
    end = raw.find(b"PK\x05\x06")
    raw[end + 12 : end + 16] = struct.pack("<I", struct.unpack("<I", raw[end + 12 : end + 16])[0] - 1)
    return bytes(raw)


def _bad_deflate_stream() -> bytes:
    raw = _zip_bytes("01.png", bytes(range(256)) * 40)
    raw[raw.find(b"01.png") + 6] = 0xFF  # the first deflate block: type 3, which does not exist
    return bytes(raw)


@pytest.mark.parametrize("data", [_nameless_member(), _bad_deflate_stream()], ids=["nameless-member", "bad-deflate"])
def test_archives_damaged_where_zipfile_raises_odd_errors(tmp_path, data):
    """Found by bench/reliability/fuzz_loaders.py: IndexError and zlib.error escaped as
    themselves instead of a one-line 'corrupt archive' reason."""
    path = tmp_path / "odd.cbz"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match="corrupt archive"):
        imaging.load_image(path)
