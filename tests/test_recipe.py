"""The corpus recipe's parsing and the synthetic-artist generator (models/recipe): the parts
that decide labels and image content, checked without network or packages."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "recipe"))

import build_corpus  # noqa: E402
import synthetic_artists  # noqa: E402


def creator(name: str) -> bytes:
    return (f'<svg><metadata><dc:creator><cc:Agent rdf:about="x"><dc:title>{name}</dc:title>'
            "</cc:Agent></dc:creator></metadata></svg>").encode()


def test_creator_labels_fold_spelling_variants_into_one_artist():
    assert build_corpus.creator_slug(creator("Sérgio Luiz Araújo Silva")) == "sergio-luiz-araujo-silva"
    assert build_corpus.creator_slug(creator("Sergio Luiz Araujo Silva")) == "sergio-luiz-araujo-silva"
    assert build_corpus.creator_slug(creator("A.J. Ashton")) == build_corpus.creator_slug(creator("AJ Ashton"))
    assert build_corpus.creator_slug(creator("Rollandin Francesco")) == "architetto-francesco-rollandin"
    assert build_corpus.creator_slug(b"<svg/>") == ""


def test_physical_svg_sizes_become_pixels_and_percentages_go():
    text = build_corpus.in_pixels('<svg width="210mm" height="1in" x="3mm"><rect width="50%"/></svg>')
    assert text.startswith('<svg width="793.70" height="96.00" x="3mm">')
    assert '<rect width="50%"/>' in text  # only the root element's size is rewritten
    assert build_corpus.in_pixels('<svg width="100%" viewBox="0 0 8 8">') == '<svg  viewBox="0 0 8 8">'
    assert build_corpus.in_pixels("<svg stroke-width='2%' width='1in'>") == "<svg stroke-width='2%' width=\"96.00\">"


def test_drawings_are_taken_spread_over_a_creators_files():
    order = build_corpus.spread(list(range(300)))
    assert sorted(order) == list(range(300))  # every file is a fallback for a failed render
    first = order[:120]
    assert max(first) > 250 and min(first) == 0  # a prefix samples the whole list, not its start


def test_synthetic_artists_are_the_same_for_any_number_of_workers(tmp_path):
    bases = []
    for i, colour in enumerate(("red", "navy", "orange")):
        img = Image.new("RGB", (64, 64), "white")
        ImageDraw.Draw(img).ellipse((8 + i * 4, 8, 56, 56 - i * 6), fill=colour, outline="black", width=3)
        bases.append(tmp_path / "base" / f"{i}.png")
        bases[-1].parent.mkdir(exist_ok=True)
        img.save(bases[-1])
    one, two = tmp_path / "one", tmp_path / "two"
    assert synthetic_artists.generate(bases, one, artists=4, subjects=2, seed=3, side=64, workers=1) == 8
    synthetic_artists.generate(bases, two, artists=4, subjects=2, seed=3, side=64, workers=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert len(files) == 8 and (one / "labels.csv").read_text() == (two / "labels.csv").read_text()
    assert all(np.array_equal(np.asarray(Image.open(one / f)), np.asarray(Image.open(two / f))) for f in files)
    # 8 drawings of 3 subjects: some subject is drawn by several artists, each differently
    subject = max({f.name for f in files}, key=lambda name: sum(f.name == name for f in files))
    drawn = [np.asarray(Image.open(one / f)) for f in files if f.name == subject]
    assert len(drawn) >= 2 and not np.array_equal(drawn[0], drawn[1])


def test_one_font_label_per_family_regular_face_only():
    assert build_corpus.font_label("Nimbus Roman", "Regular") == "nimbus-roman"
    assert build_corpus.font_label("DejaVu Sans Mono", "Book") == "dejavu-sans-mono"  # a design of its own
    for family, style in [("Nimbus Roman", "Bold"), ("Nimbus Roman", "Italic"), ("Nimbus Sans Narrow", "Regular"),
                          ("GentiumAlt", "Regular"), ("Roboto Condensed", "Regular"), ("Standard Symbols PS", "Regular"),
                          ("Linux Libertine Display O", "Regular")]:
        assert build_corpus.font_label(family, style) is None, (family, style)


def test_an_icon_set_gives_one_variant_concepts_first():
    # a set drawn in two weights: the variant naming more concepts wins, and nothing of the other is taken
    names = {"home-bold", "house-linear", "search-linear", "user-linear", "heart-bold", "star-linear",
             "zebra-linear", "yak-linear", "xylophone-bold", "camera-front"}
    chosen = build_corpus.set_icons(names, 6)
    assert chosen == {"home": "house-linear", "search": "search-linear", "user": "user-linear", "star": "star-linear",
                      "yak-linear": "yak-linear", "zebra-linear": "zebra-linear"}
    # a set that names few concepts its own way is filled from its own icons, spread, up to the count
    odd = {f"pictogram-{i:03d}" for i in range(100)} | {"heart"}
    filled = build_corpus.set_icons(odd, 5)
    assert len(filled) == 5 and filled["heart"] == "heart" and "pictogram-075" in filled.values()


def test_hue_shift_bounds_only_the_hue_turn():
    from dataclasses import asdict

    for index in range(20):
        wide, kept, narrow = (synthetic_artists.draw_artist(index, 3, shift) for shift in (0.5, 0.0, 0.1))
        assert asdict(kept) | {"hue_shift": wide.hue_shift} == asdict(wide)  # every other choice the same
        assert kept.hue_shift == 0 and abs(narrow.hue_shift) <= 0.1 and narrow.hue_shift == pytest.approx(wide.hue_shift / 5)
    assert synthetic_artists.draw_artist(7, 0) == synthetic_artists.draw_artist(7, 0, 0.5)  # the default: as before


def test_one_element_of_a_theme_svg_keeps_what_it_uses_and_nothing_else_drawn():
    import xml.etree.ElementTree as ET

    theme = b"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 100 100">
      <defs><linearGradient id="ink"/></defs>
      <circle id="shared" r="3"/>
      <g id="layer" transform="translate(10 0)" style="display:none">
        <g id="WhiteKing"><rect id="body" fill="url(#ink)"/><use xlink:href="#shared"/></g>
        <g id="WhiteQueen"><rect id="queen-body"/></g>
      </g>
      <rect id="board"/>
    </svg>"""
    root = ET.fromstring(build_corpus.element_svg(theme, "WhiteKing"))
    ids = [node.get("id") for node in root.iter() if node.get("id")]
    assert {"WhiteKing", "body", "layer", "ink"} <= set(ids)
    assert not {"WhiteQueen", "queen-body", "board"} & set(ids)  # other pieces and the board are gone
    layer = next(node for node in root.iter() if node.get("id") == "layer")
    assert layer.get("transform") == "translate(10 0)" and "display:none" not in layer.get("style")
    drawn_circles = [node for node in root if node.get("id") == "shared"]
    assert not drawn_circles  # the used circle is no longer drawn where it stood ...
    assert ids.count("shared") == 1  # ... but kept once, as a definition the <use> finds
    assert any(node.get("id") == "shared" for defs in root if defs.tag.endswith("defs") for node in defs)
    with pytest.raises(ValueError, match="no element"):
        build_corpus.element_svg(theme, "BlackKing")
    with pytest.raises(ValueError, match="definition"):
        build_corpus.element_svg(theme, "ink")
