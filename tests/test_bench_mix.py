"""bench/bench_mix.py's fixed held-out split: the model card's numbers depend on it."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_mix import held_out_split  # noqa: E402

from stylesearch.train.data import Example  # noqa: E402


def test_listed_styles_are_held_out_and_comments_ignored(tmp_path):
    examples = [Example(f"{style}-{i}.png", style) for style in ("emoji/a", "emoji/b", "chess/c") for i in range(3)]
    listing = tmp_path / "held.txt"
    listing.write_text("# held out\n  # indented comment\nemoji/b\n\nchess/c\nchess/c\n")
    train, held = held_out_split(examples, listing)
    assert {e.artist for e in train} == {"emoji/a"} and {e.artist for e in held} == {"emoji/b", "chess/c"}
    assert len(held) == 6
    listing.write_text("emoji/zz\n")
    with pytest.raises(SystemExit, match="no images of emoji/zz"):
        held_out_split(examples, listing)
    listing.write_text("emoji/b\nmahjongg/egypt\n")  # a source this corpus was built without
    train, held = held_out_split(examples, listing)
    assert {e.artist for e in held} == {"emoji/b"} and len(train) == 6
    listing.write_text("# nothing\n")
    with pytest.raises(SystemExit, match="no styles listed"):
        held_out_split(examples, listing)


def test_validation_styles_are_training_styles_apart_from_the_held_out_ones():
    """Checkpoints chosen on models/recipe/validation_styles.txt make no choice on the styles
    the model card scores, nor on the six synthetic-artist bases (models/recipe/gpu_run.sh)."""
    recipe = Path(__file__).resolve().parents[1] / "models" / "recipe"

    def listed(name: str) -> set[str]:
        lines = (recipe / name).read_text().splitlines()
        return {line.strip() for line in lines if line.strip() and not line.strip().startswith("#")}

    validation, held = listed("validation_styles.txt"), listed("held_out_styles.txt")
    bases = {"emoji/twemoji", "emoji/openmoji", "emoji/fluent-emoji-flat", "icons/Tango", "icons/Paper", "icons/gnome"}
    assert len(validation) == 10 and not validation & held and not validation & bases
    assert all(f"$C/{base}" in (recipe / "gpu_run.sh").read_text() for base in bases)
