"""Coverage-guided fuzzing (atheris/libFuzzer) of the image and archive loaders.

    .venv/bin/pip install atheris
    .venv/bin/python bench/reliability/fuzz_loaders.py -atheris_runs=200000

The first input byte picks the file type (.jpg .png .gif .webp .tiff .bmp .cbz .cbr .pdf),
the rest is the file. stylesearch and Pillow's format parsers (Python code) are instrumented,
so inputs that reach new branches are kept and mutated further, starting from one valid file
per type. Any outcome but an RGB image or one ImageLoadError line is a crash: libFuzzer
stops and writes the input to the work folder. (The test suite runs the same loaders under
hypothesis for a fixed number of examples: tests/test_hostile.py.)
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["stylesearch", "PIL", "zipfile", "rarfile"]):  # before anything imports them
    import harness  # noqa: F401 - puts the project and tests/ on sys.path
    from PIL import Image

    from stylesearch import imaging
    from stylesearch.errors import ImageLoadError

    from hostile import loader_seeds

    Image.init()  # Pillow imports its format plugins lazily: now, so they are instrumented too

SEEDS = loader_seeds()
EXTS = sorted(SEEDS)
WORK = Path(tempfile.mkdtemp(prefix="stylesearch-fuzz-"))


def one_input(data: bytes) -> None:
    if not data:
        return
    path = WORK / f"input{EXTS[data[0] % len(EXTS)]}"
    path.write_bytes(data[1:])
    try:
        img = imaging.load_image(path, target=32)
    except ImageLoadError as exc:
        if not str(exc) or "\n" in str(exc):
            raise AssertionError(f"not a one-line reason: {exc!r}") from None
        return
    if img.mode != "RGB" or img.width * img.height == 0:
        raise AssertionError(f"loaded as {img.mode} {img.size}")


def main() -> None:
    warnings.simplefilter("ignore")  # Pillow warns about every damaged TIFF tag
    corpus = WORK / "corpus"
    corpus.mkdir()
    for i, ext in enumerate(EXTS):
        (corpus / f"seed{i}").write_bytes(bytes([i]) + SEEDS[ext])
    args = [sys.argv[0], f"-artifact_prefix={WORK}/", "-timeout=20", "-rss_limit_mb=3072", *sys.argv[1:], str(corpus)]
    print(f"work folder: {WORK}", file=sys.stderr)
    os.chdir(WORK)
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
