"""A hostile-input corpus, generated at run time (never committed binaries).

`make_corpus(root)` writes every kind of file a years-old downloads folder holds and returns
what indexing each one must give: "ok" (indexed), "failed:<words in the reason>" (a catalog
row with that one-line reason), "any" (indexed or failed, the outcome of random damage) or
"absent" (nothing to index, e.g. a folder link that is not followed).
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

from PIL import Image

from samples import cbz, drawing, encoded, png_header_only, rar4, save

FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF"}
VANISHING = "vanishes.png"  # deleted between listing and reading by the caller (see run_cli)


def _flip_bits(data: bytes, seed: int, count: int = 12) -> bytes:
    """Flip `count` random bits after the first 16 bytes (the signature stays, so the
    decoder gets far enough to meet the damage)."""
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(count):
        at = rng.randrange(16, len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A real JPEG whose SOF header is patched to declare width x height."""
    data = bytearray(encoded(drawing(), "JPEG"))
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_with_size(width: int, height: int) -> bytes:
    data = bytearray(encoded(drawing(), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen size
    return bytes(data)


def _tiff_with_size(width: int, height: int) -> bytes:
    """A minimal uncompressed greyscale TIFF declaring width x height with 8 bytes of pixels."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 8 + 2 + 12 * 8 + 4), (278, 4, height), (279, 4, 8)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", t, kind, 1, v) for t, kind, v in tags) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0" * 8


def _webp_canvas(width: int, height: int) -> bytes:
    """A VP8X WebP header declaring a width x height canvas and no image data."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def _absurd_exif() -> bytes:
    """A good JPEG whose EXIF says orientation 9999, has a 0/0 rational and a 30 kB string."""
    exif = Image.Exif()
    exif[0x0112] = 9999
    exif[0x011A] = (0, 0)  # XResolution 0/0
    exif[0x010E] = "x" * 30_000  # ImageDescription
    return encoded(drawing(seed=3), "JPEG", exif=exif.tobytes())


def _zip_lying_about_size(path: Path, claimed: int) -> Path:
    """A CBZ whose central directory claims a `claimed`-byte cover (headers can lie)."""
    cbz(path, {"01.png": encoded(drawing(), "PNG")})
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    raw[at + 24 : at + 28] = struct.pack("<I", claimed)
    path.write_bytes(bytes(raw))
    return path


def _many_members(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"{i}.png", b"")
    return path


def make_corpus(root: Path, escape: Path) -> dict[str, str]:
    """Write the corpus below `root`; relative name -> expectation. `escape` is a folder
    outside `root` that a CBZ member names by absolute path: it must stay empty."""
    expect: dict[str, str] = {}

    def at(name: str, expectation: str) -> Path:
        """Note what `name` must give; its path, with its folder made."""
        expect[name] = expectation
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        return root / name

    def put(name: str, data: bytes, expectation: str) -> None:
        at(name, expectation).write_bytes(data)

    good_png = encoded(drawing(seed=1), "PNG")
    for i in range(8):
        put(f"good/{i}.png", encoded(drawing(seed=100 + i, style=i % 3), "PNG"), "ok")
    for ext, fmt in FORMATS.items():
        data = encoded(drawing(seed=7, size=(160, 200)), fmt)
        put(f"truncated/half.{ext}", data[: len(data) // 2], "failed:")
        put(f"truncated/head.{ext}", data[:24], "failed:")
        put(f"bitflip/a.{ext}", _flip_bits(data, seed=1), "any")
        put(f"bitflip/b.{ext}", _flip_bits(data, seed=2, count=200), "any")
    put("empty/zero.jpg", b"", "failed:empty file")
    put("empty/zero.cbz", b"", "failed:empty file")
    put("garbage/text.png", b"this is not an image\n" * 10, "failed:not a recognised image")
    put("bombs/png.png", png_header_only(60000, 60000), "failed:decompression bomb")
    put("bombs/warning-zone.png", png_header_only(10000, 10000), "failed:decompression bomb")
    put("bombs/jpeg.jpg", _jpeg_with_size(65000, 65000), "failed:decompression bomb")
    put("bombs/gif.gif", _gif_with_size(65535, 65535), "failed:decompression bomb")
    put("bombs/tiff.tiff", _tiff_with_size(100_000, 100_000), "failed:decompression bomb")
    put("bombs/webp.webp", _webp_canvas(16384, 16384), "failed:")
    put("exif/absurd.jpg", _absurd_exif(), "ok")
    cbz(at("archives/traversal.cbz", "ok"), {"../../x.png": good_png, "../../../../etc/evil.png": good_png,
                                           f"{escape}/absolute.png": good_png, "02.png": good_png})
    cbz(at("archives/traversal-only.cbz", "failed:no images"), {"../../x.png": good_png, "..\\..\\y.png": good_png})
    cbz(at("archives/zip-bomb-ratio.cbz", "failed:compression ratio"), {"01.png": b"\0" * (32 << 20)})
    _many_members(at("archives/many-members.cbz", "failed:too many members"), 20_001)
    _zip_lying_about_size(at("archives/lying-size.cbz", "failed:too large"), 1 << 30)
    inner = cbz(root / "archives/.inner.cbz", {"01.png": good_png})
    cbz(at("archives/nested.cbz", "failed:no images"), {"inner.cbz": inner.read_bytes(), "inner.zip": inner.read_bytes()})
    inner.unlink()
    cbz(at("archives/encrypted.cbz", "failed:encrypted"), {"01.png": good_png}, encrypted=True)
    no_backend = not any(shutil.which(tool) for tool in ("unrar", "unar", "bsdtar"))
    rar4(at("archives/compressed.cbr", "failed:unrar backend" if no_backend else "failed:"), {"01.png": good_png}, method=0x33)
    good_cbz = (root / "archives/traversal.cbz").read_bytes()
    put("archives/truncated.cbz", good_cbz[: len(good_cbz) // 2], "failed:")
    put("archives/garbage.cbz", b"PK\x03\x04" + b"\xff" * 200, "failed:")
    put("archives/garbage.cbr", b"Rar!\x1a\x07\x00" + b"\xff" * 200, "failed:")
    put("archives/broken.pdf", b"%PDF-1.4\n" + b"\xff" * 300, "failed:")
    put("names/new\nline.png", good_png, "ok")
    put("names/bad\nname.jpg", b"\xff\xd8\xff", "failed:")
    put(os.fsdecode(b"names/caf\xe9.png"), good_png, "ok")  # not valid UTF-8
    put(os.fsdecode(b"names/\xff\xfe.jpg"), b"", "failed:empty file")
    put("unreadable/locked.png", good_png, "failed:permission denied")
    os.chmod(root / "unreadable/locked.png", 0)
    for name, target, expectation in [
        ("links/loop-a.jpg", "loop-b.jpg", "failed:cannot stat"),  # a symlink loop
        ("links/loop-b.jpg", "loop-a.jpg", "failed:cannot stat"),
        ("links/dangling.png", "nowhere.png", "failed:cannot stat"),
        ("links/device.jpg", "/dev/zero", "failed:not a regular file"),
        ("links/folder-loop", "..", "absent"),  # a folder link: never followed
    ]:
        os.symlink(target, at(name, expectation))
    os.mkfifo(at("fifo.jpg", "failed:not a regular file"))
    with open(at("sparse-huge.png", "failed:too large"), "wb") as fh:  # 300 MiB, no disk used
        fh.truncate(300 << 20)
    put(VANISHING, good_png, "failed:file not found")
    save(drawing(seed=5), at("ok-after-all.gif", "ok"))
    return expect


def loader_seeds() -> dict[str, bytes]:
    """extension -> one small valid file, per format the loaders parse: where fuzzing starts."""
    img = drawing(seed=4, size=(24, 32))
    seeds = {ext: encoded(img, fmt) for ext, fmt in {".jpg": "JPEG", ".png": "PNG", ".gif": "GIF", ".webp": "WEBP",
                                                       ".tiff": "TIFF", ".bmp": "BMP"}.items()}
    with tempfile.TemporaryDirectory() as folder:
        seeds[".cbz"] = cbz(Path(folder) / "a.cbz", {"01.png": seeds[".png"], "02.jpg": seeds[".jpg"]}).read_bytes()
        seeds[".cbr"] = rar4(Path(folder) / "a.cbr", {"01.png": seeds[".png"]}).read_bytes()
    buf = io.BytesIO()
    img.save(buf, "PDF")
    seeds[".pdf"] = buf.getvalue()
    return seeds


# The CLI, with one file deleted after the scan listed it and before it is read (a race a
# real folder gives at random). Everything else is the installed console script's code.
CLI_WITH_VANISHING_FILE = f"""
import os, sys
from stylesearch.library import scan
real_plan = scan.plan
def plan(*args, **kwargs):
    result = real_plan(*args, **kwargs)
    for job in result.jobs:
        if job.path.endswith(b"/{VANISHING}"):
            os.unlink(job.path)
    return result
scan.plan = plan
from stylesearch.cli import main
sys.argv[0] = "stylesearch"
main()
"""
