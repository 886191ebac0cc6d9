import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from stylesearch.cli import cli
from stylesearch.errors import StyleSearchError
from stylesearch.library.folder import Library
from stylesearch.library.indexer import index_paths
from stylesearch.search import morph as morph_module
from stylesearch.search.morph import morph, resample
from stylesearch.search.render import Tile, contact_sheet, html_gallery, map_html, map_png
from stylesearch.search.similar import dhash, near_duplicate, similar

from samples import drawing, save


class FixedVectors:
    """An embedder stand-in that returns chosen vectors per file name: known geometry."""

    def __init__(self, vectors: dict[str, np.ndarray], model_id: str = "fixed-1-000000000000") -> None:
        from types import SimpleNamespace

        from stylesearch.model.locate import resolve_model_path

        self.vectors = vectors
        self.size = 32
        self.dim = len(next(iter(vectors.values())))
        self.info = SimpleNamespace(model_id=model_id, path=resolve_model_path(None))

    def _vector(self, path) -> np.ndarray:
        return np.asarray(self.vectors[os.path.basename(os.fsdecode(path))], dtype=np.float32)

    def stream(self, jobs, load=None):
        for job in jobs:
            if load is not None:
                load(job)  # hashes the file, as the real pipeline does
            yield job, self._vector(job.path), None

    def embed_file(self, path) -> np.ndarray:
        return self._vector(path)


POSITIONS = np.cumsum([0.0] + [1.0 + 0.1 * i for i in range(9)])


@pytest.fixture
def line(tmp_path):
    """Works on a line in style space with growing gaps (1, 1.1, 1.2, ...), so each one's
    nearest neighbour is the one before it and the k=1 graph is a chain; plus an island pair."""
    root = tmp_path / "line"
    vectors = {}
    for i, x in enumerate(POSITIONS):
        save(drawing(seed=i), root / f"w{i}.png")
        vectors[f"w{i}.png"] = np.array([x, 0.0, 0.0])
    for j, name in enumerate(("island0.png", "island1.png")):
        save(drawing(seed=50 + j), root / name)
        vectors[name] = np.array([0.0, 1000.0 + j, 0.0])
    save(drawing(seed=99), tmp_path / "outside.png")
    vectors["outside.png"] = np.array([POSITIONS[-1] + 0.4, 0.0, 0.0])
    with Library(tmp_path / "lib", create=True) as lib:
        embedder = FixedVectors(vectors)
        index_paths(lib, [root], embedder)
        yield lib, root, embedder


def names(steps):
    return [os.path.basename(s.path) for s in steps]


def test_morph_follows_the_known_shortest_path(line):
    lib, root, embedder = line
    steps, graph = morph(lib, root / "w0.png", root / "w9.png", k=1, make_embedder=lambda _: embedder)
    assert names(steps) == [f"w{i}.png" for i in range(10)]
    assert [s.to_a for s in steps] == pytest.approx(POSITIONS)
    assert [s.to_b for s in steps] == pytest.approx(POSITIONS[-1] - POSITIONS)
    assert graph.k == 1 and len(graph.ids) == 12
    # with k=3 a shortest path may skip works (the triangle inequality), but never goes back
    skipping, _ = morph(lib, root / "w0.png", root / "w9.png", k=3, make_embedder=lambda _: embedder)
    order = [int(n[1]) for n in names(skipping)]
    assert order[0] == 0 and order[-1] == 9 and order == sorted(order) and len(order) < 10


def test_morph_with_outside_endpoints_and_resampling(line, tmp_path, monkeypatch):
    lib, root, embedder = line
    steps, _ = morph(lib, root / "w1.png", tmp_path / "outside.png", k=1, make_embedder=lambda _: embedder)
    assert names(steps)[0] == "w1.png" and names(steps)[-1] == "outside.png"
    assert names(steps)[1:-1] == [f"w{i}.png" for i in range(2, 10)]
    assert steps[-1].to_b == 0 and steps[-2].to_b == pytest.approx(0.4)
    monkeypatch.chdir(tmp_path)  # an outside end given relative is listed absolute, as every other path
    relative, _ = morph(lib, root / "w8.png", "outside.png", k=1, make_embedder=lambda _: embedder)
    assert relative[-1].path == str(tmp_path / "outside.png")
    # cumulative 0, 1, 2.1, 3.3, 4.6, 6.0, 7.5, 9.1, 10.8, 12.6: thirds at 4.2 and 8.4 -> w4, w7
    short, _ = morph(lib, root / "w0.png", root / "w9.png", k=1, steps=4, make_embedder=lambda _: embedder)
    assert names(short) == ["w0.png", "w4.png", "w7.png", "w9.png"]


def test_resample_spacing():
    path = list(range(11))
    assert resample(path, np.arange(11.0), 3) == [0, 5, 10]
    assert resample(path, np.arange(11.0), 50) == path


def test_disconnected_graph_says_so_and_suggests_larger_k(line):
    lib, root, embedder = line
    with pytest.raises(StyleSearchError, match=r"separate groups; try a larger --k"):
        morph(lib, root / "w0.png", root / "island0.png", k=1, make_embedder=lambda _: embedder)


def test_graph_cache_is_reused_and_rebuilt_after_changes(line, monkeypatch):
    lib, root, embedder = line
    morph(lib, root / "w0.png", root / "w9.png", k=2, make_embedder=lambda _: embedder)
    builds = []
    real = morph_module.build_graph
    monkeypatch.setattr(morph_module, "build_graph", lambda *a: builds.append(1) or real(*a))
    morph(lib, root / "w0.png", root / "w9.png", k=2, make_embedder=lambda _: embedder)
    assert builds == []  # cached
    (root / "w5.png").unlink()  # the path must now jump over the hole
    index_paths(lib, [root], embedder)
    steps, _ = morph(lib, root / "w0.png", root / "w9.png", k=2, make_embedder=lambda _: embedder)
    assert builds == [1] and "w5.png" not in names(steps) and names(steps)[-1] == "w9.png"


def test_distinct_drops_reprints(tmp_path, embedder):
    root = tmp_path / "prints"
    original = drawing(seed=7, size=(200, 260))
    save(original, root / "a" / "cover.png")
    save(original, root / "b" / "cover-rescan.jpg", quality=70)  # re-encoded
    save(original.resize((150, 195)), root / "c" / "cover-small.png")  # resized
    for i in range(4):
        save(drawing(seed=100 + i, size=(200, 260)), root / "d" / f"other{i}.png")
    assert near_duplicate(dhash(root / "a" / "cover.png"), dhash(root / "b" / "cover-rescan.jpg"))
    assert not near_duplicate(dhash(root / "a" / "cover.png"), dhash(root / "d" / "other0.png"))
    with Library(tmp_path / "lib", create=True) as lib:
        index_paths(lib, [root], embedder)
        plain = similar(lib, root / "a" / "cover.png", k=6, make_embedder=lambda _: embedder)
        distinct = similar(lib, root / "a" / "cover.png", k=6, distinct=True, make_embedder=lambda _: embedder)
    assert {"cover-rescan.jpg", "cover-small.png"} <= {os.path.basename(h.path) for h in plain}
    assert {os.path.basename(h.path) for h in distinct} == {f"other{i}.png" for i in range(4)}


def test_distinct_searches_past_many_reprints_and_can_list_the_query(tmp_path, embedder):
    root = tmp_path / "prints"
    original = drawing(seed=7, size=(200, 260))
    save(original, root / "cover.png")
    for i in range(40):  # more reprints than the first candidates asked for (4k + 16 = 32)
        save(original.resize((200 - i, 260 - i)), root / "reprints" / f"r{i:02d}.png")
    for i in range(4):
        save(drawing(seed=100 + i, size=(200, 260), style=1), root / "others" / f"other{i}.png")
    with Library(tmp_path / "lib", create=True) as lib:
        index_paths(lib, [root], embedder)
        nearest = similar(lib, root / "cover.png", k=32, make_embedder=lambda _: embedder)
        distinct = similar(lib, root / "cover.png", k=4, distinct=True, make_embedder=lambda _: embedder)
        with_self = similar(lib, root / "cover.png", k=3, distinct=True, include_self=True, make_embedder=lambda _: embedder)
    assert all("reprints" in h.path for h in nearest)  # the reprints fill the first candidates
    assert {os.path.basename(h.path) for h in distinct} == {f"other{i}.png" for i in range(4)}
    assert with_self[0].path == str(root / "cover.png") and with_self[0].distance < 1e-4
    assert all("others" in h.path for h in with_self[1:]) and len(with_self) == 3


@pytest.mark.parametrize("count", [0, 1, 50])
def test_contact_sheet_and_gallery_for_0_1_50_results(tmp_path, count):
    folder = tmp_path / "ünïcode folder with spaces"
    tiles = [Tile(str(save(drawing(seed=i), folder / f"wörk {i}.png")), f"#{i + 1}  0.{i:04d}") for i in range(count)]
    if count:
        broken = folder / "broken.png"
        broken.write_bytes(b"junk")
        tiles[-1] = Tile(str(broken), "#last")
    contact_sheet(tiles, tmp_path / "sheet.png", "Works in the style of “x”")
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width >= 200 and sheet.height >= 200
        assert len(np.unique(np.asarray(sheet.convert("L")))) > 10  # drawn, not blank
    html_gallery(tiles, tmp_path / "page.html", "Gallery <&>")
    page = (tmp_path / "page.html").read_text()
    assert page.count("<figure>") == count and "Gallery &lt;&amp;&gt;" in page
    assert ("no results" in page) == (count == 0)
    assert page.count("data:image/jpeg;base64,") == count  # self-contained


def test_pictures_show_any_file_name(tmp_path):
    """Names with a newline or bytes that are not UTF-8 are shown escaped, never a crash or a
    half-written file (they are legal on Linux and turn up in downloaded collections)."""
    folder = tmp_path / "odd"
    names = ["two\nlines.png", os.fsdecode(b"latin1-\xe9.png"), "plain.png"]
    paths = [str(save(drawing(seed=i), folder / name)) for i, name in enumerate(names)]
    tiles = [Tile(path, f"#{i}") for i, path in enumerate(paths)]
    contact_sheet(tiles, tmp_path / "sheet.png", f"Works in the style of {names[0]}")
    html_gallery(tiles, tmp_path / "page.html", f"Works in the style of {names[1]}")
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "two\\nlines.png" in page and "latin1-\\udce9.png" in page and page.count("<figure>") == 3
    assert "%E9" in page  # the link keeps the file's real bytes
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    map_html(paths, xy, ["a\nb", os.fsdecode(b"\xff"), "c"], tmp_path / "map.html", "map")
    assert (tmp_path / "map.html").read_text(encoding="utf-8").count('class="t"') == 3
    map_png(paths, xy, ["a", "b", "c"], tmp_path / "map.png", names[0], side=40)
    with Image.open(tmp_path / "map.png") as png:
        pixels = np.asarray(png.convert("RGB"))
    assert (pixels[:, -1] == 255).all() and (pixels[-1] == 255).all()  # nothing runs off the canvas
    right_frame = pixels[:, pixels.shape[1] - 10]  # the right edge of the frames of the works at x = 1, in the margin
    assert (right_frame != 255).any(axis=1).sum() >= 40


def test_map_colours_by_folder_below_its_root(env, tmp_path):
    root = tmp_path / "shelf"
    for i, folder in enumerate(["x/covers", "y/covers", "."]):
        for j in range(2):
            save(drawing(seed=10 * i + j, style=i), root / folder / f"p{j}.png")
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(root)]).exit_code == 0
    assert runner.invoke(cli, ["map", "--html", str(tmp_path / "map.html")]).exit_code == 0
    legend = (tmp_path / "map.html").read_text().split('class="legend"')[1].split("</p>")[0]
    assert "x/covers" in legend and "y/covers" in legend and "shelf" in legend  # two "covers" folders stay apart
    assert "Style map: 6 works (t-SNE)" in (tmp_path / "map.html").read_text()


def test_picture_names_must_say_their_type(env, comics, tmp_path):
    runner = CliRunner()
    a = comics / "artist0" / "page0.png"
    for args in (["similar", str(a), "--sheet", str(tmp_path / "noext")], ["map", "--png", str(tmp_path / "m.xyz")],
                 ["morph", str(a), str(a), "--sheet", str(tmp_path / "m.noext")]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2 and "end the name with .png" in result.output and "Traceback" not in result.output, result.output
    assert not (env / "catalog.sqlite3").exists()  # refused before any work


def test_cli_morph_similar_pictures_and_map(env, comics, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["index", str(comics)]).exit_code == 0
    a, b = comics / "artist0" / "page0.png", comics / "artist2" / "page3.png"
    result = runner.invoke(cli, ["morph", str(a), str(b), "--json", "--sheet", str(tmp_path / "m.png"), "--html", str(tmp_path / "m.html")])
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert steps[0]["path"] == str(a) and steps[-1]["path"] == str(b) and steps[0]["distance_to_a"] == 0
    assert (tmp_path / "m.png").is_file() and (tmp_path / "m.html").read_text().count("<figure>") == len(steps)
    result = runner.invoke(cli, ["similar", str(a), "-k", "4", "--sheet", str(tmp_path / "s.png"), "--html", str(tmp_path / "s.html")])
    assert result.exit_code == 0 and (tmp_path / "s.html").read_text().count("<figure>") == 5  # query + 4
    result = runner.invoke(cli, ["map", "--html", str(tmp_path / "map.html"), "--png", str(tmp_path / "map.png"), "--limit", "10"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "map.html").read_text()
    assert page.count('class="t"') == 10 and "artist1" in page
    with Image.open(tmp_path / "map.png") as png:
        assert png.width >= 600
    under = runner.invoke(cli, ["map", "--png", str(tmp_path / "sub.png"), "--under", str(comics / "artist1")])
    assert under.exit_code == 0
    assert runner.invoke(cli, ["map"]).exit_code == 1
    assert "--k must be at least 1" in runner.invoke(cli, ["morph", str(a), str(b), "--k", "0"]).output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt install chromium)")
def test_gallery_and_map_render_in_a_real_browser(env, comics, tmp_path):
    """Headless Chromium screenshots: non-blank, and every thumbnail decoded by the browser."""
    runner = CliRunner()
    runner.invoke(cli, ["index", str(comics)])
    runner.invoke(cli, ["similar", str(comics / "artist0" / "page0.png"), "-k", "6", "--html", str(tmp_path / "g.html")])
    runner.invoke(cli, ["map", "--html", str(tmp_path / "map.html")])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,1200"]
    for page, expected in (("g.html", 7), ("map.html", 12)):
        shot = tmp_path / f"{page}.png"
        subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", (tmp_path / page).as_uri()], capture_output=True, timeout=120)
        with Image.open(shot) as screenshot:
            grey = np.asarray(screenshot.convert("L"))
        assert grey.std() > 10  # content, not a blank page
        dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=3000", "--dump-dom", (tmp_path / page).as_uri()],
                             capture_output=True, text=True, timeout=120).stdout
        assert dom.count("data:image/jpeg;base64,") == expected


def test_damaged_graph_cache_is_rebuilt(line):
    lib, root, embedder = line
    morph(lib, root / "w0.png", root / "w9.png", k=1, make_embedder=lambda _: embedder)
    cache = lib.folder / "graph-k1.npz"
    for damage in (cache.read_bytes()[:300], b""):
        cache.write_bytes(damage)
        steps, _ = morph(lib, root / "w0.png", root / "w9.png", k=1, make_embedder=lambda _: embedder)
        assert len(steps) == 10


def test_graph_ignores_index_entries_the_catalog_no_longer_has(line):
    """In the daemon a deletion is committed to the catalog a moment before it leaves the live
    index; a graph built in that moment must not link works through the deleted ones."""
    lib, root, embedder = line
    with lib.writer():  # as the daemon: the in-memory index is the one in use
        lib.ann()
        gone = [lib.catalog.row(os.fsencode(root / name)).id for name in ("w5.png", "island1.png")]  # island1: the top id
        with lib.catalog.transaction():
            lib.catalog.delete(gone)
            lib.catalog.bump_generation()
        graph = morph_module.build_graph(lib, 1)
    ids, vectors = lib.catalog.searchable(lib.model_id)
    assert list(graph.ids) == list(ids) and (graph.neighbours >= 0).all()
    true = np.linalg.norm(vectors[graph.neighbours[:, 0]] - vectors, axis=1)
    assert graph.distances[:, 0] == pytest.approx(true)  # every edge joins the two works it claims to


def test_morph_is_answered_again_when_a_work_on_its_path_left_meanwhile(line, monkeypatch):
    """The daemon can delete a work between building the graph and naming the path's works:
    the morph is answered from the new graph, never with a '?' or a crash."""
    lib, root, embedder = line
    stale = morph_module.build_graph(lib, 2)  # at k=2 the only way from w4 to w6 is through w5
    with lib.catalog.transaction():
        lib.catalog.delete([lib.catalog.row(os.fsencode(root / "w5.png")).id])
        lib.catalog.bump_generation()
    real, graphs = morph_module.cached_graph, [stale]
    monkeypatch.setattr(morph_module, "cached_graph", lambda library, k: graphs.pop() if graphs else real(library, k))
    steps, graph = morph(lib, root / "w0.png", root / "w9.png", k=2, make_embedder=lambda _: embedder)
    assert not graphs and len(graph.ids) == 11
    assert names(steps)[0] == "w0.png" and names(steps)[-1] == "w9.png" and "w5.png" not in names(steps)


def test_morph_from_outside_skips_works_newer_than_its_graph(line, tmp_path, monkeypatch):
    lib, root, embedder = line
    stale = morph_module.build_graph(lib, 1)
    save(drawing(seed=77), root / "new.png")
    embedder.vectors["new.png"] = np.array([POSITIONS[-1] + 0.3, 0.0, 0.0])  # outside.png's nearest now
    index_paths(lib, [root], embedder)
    monkeypatch.setattr(morph_module, "cached_graph", lambda library, k: stale)  # as if built a moment before
    steps, _ = morph(lib, root / "w1.png", tmp_path / "outside.png", k=1, make_embedder=lambda _: embedder)
    assert names(steps)[-2:] == ["w9.png", "outside.png"]
