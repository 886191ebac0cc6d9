import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from stylesearch.cli import cli

from samples import drawing, png_header_only, save


@pytest.fixture
def runner(env):
    return CliRunner()


def invoke(runner, *args):
    result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def test_help_for_every_command(runner):
    top = invoke(runner, "--help")
    assert top.exit_code == 0 and "stylesearch index" in top.output
    for command in ("index", "similar", "embed", "status", "forget"):
        result = invoke(runner, command, "--help")
        assert result.exit_code == 0 and "Usage: " in result.output and len(result.output.splitlines()) > 5


def test_index_similar_status_forget_round_trip(runner, comics, env):
    result = invoke(runner, "index", comics, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 12
    query = comics / "artist0" / "page0.png"
    text = invoke(runner, "similar", query, "-k", "3")
    assert text.exit_code == 0 and str(comics / "artist") in text.output and "rank" in text.output
    lines = invoke(runner, "similar", query, "-k", "3", "--json").output.splitlines()
    hits = [json.loads(line) for line in lines]
    assert [h["rank"] for h in hits] == [1, 2, 3] and all(h["path"] != str(query) for h in hits)
    status = json.loads(invoke(runner, "status", "--json").output)
    assert status["counts"]["ok"] == 12 and status["index"]["vectors"] == 12 and status["index"]["fresh"]
    assert status["roots"] == [{"path": str(comics), "reachable": True}] and status["library"] == str(env)
    forgot = invoke(runner, "forget", comics / "artist1", "--json")
    assert json.loads(forgot.output) == {"forgotten": 4}
    assert json.loads(invoke(runner, "status", "--json").output)["counts"]["ok"] == 8
    again = json.loads(invoke(runner, "index", "--json").output)  # no paths: the remembered roots
    assert again["added"] == 4 and again["unchanged"] == 8


def test_index_reports_failures_and_missing_paths(runner, comics, tmp_path):
    (comics / "bad.jpg").write_bytes(b"nope")
    result = invoke(runner, "index", comics, tmp_path / "no-such-folder")
    assert result.exit_code == 1
    assert "bad.jpg" in result.output and "path not found" in result.output
    status = json.loads(invoke(runner, "status", "--json", "--failed").output)
    assert status["counts"]["failed"] == 1 and "not a recognised image" in status["failed"][0]["error"]


def test_a_failure_is_one_line_even_when_its_name_has_a_newline(runner, comics):
    (comics / "two\nlines.jpg").write_bytes(b"nope")
    (comics / os.fsdecode(b"bad-\xff.jpg")).write_bytes(b"nope")
    indexed = invoke(runner, "index", comics)
    assert "failed: " + str(comics / "two\\nlines.jpg") + ": " in indexed.output
    listed = [line for line in invoke(runner, "status", "--failed").output.splitlines() if line.startswith("failed: ")]
    assert len(listed) == 2 and any("two\\nlines.jpg" in line for line in listed)
    assert any("bad-\\udcff.jpg" in line for line in listed)
    real = json.loads(invoke(runner, "status", "--json", "--failed").output)["failed"]
    assert {item["path"] for item in real} == {str(comics / "two\nlines.jpg"), os.fsdecode(os.fsencode(comics) + b"/bad-\xff.jpg")}


def test_similar_on_an_image_outside_the_library(runner, comics, tmp_path):
    invoke(runner, "index", comics)
    outside = save(drawing(seed=500, style=1), tmp_path / "new.webp", "WEBP")
    hits = [json.loads(line) for line in invoke(runner, "similar", outside, "--json", "-k", "12").output.splitlines()]
    assert len(hits) == 12


def test_embed_writes_paths_and_vectors(runner, comics, tmp_path):
    out = tmp_path / "vectors.npz"
    (comics / "bad.png").write_bytes(b"x")
    result = invoke(runner, "embed", comics, "-o", out)
    assert result.exit_code == 0 and "bad.png" in result.output
    with np.load(out) as data:
        assert data["vectors"].shape == (12, 16) and data["vectors"].dtype == np.float32
        assert len(data["paths"]) == 12 and str(data["model_id"]).startswith("tiny-test-")


@pytest.mark.parametrize(
    "indexed, args, message",
    [
        (True, ["similar", "/no/such/image.png"], "query not found"),
        (False, ["similar", "{comics}/artist0/page0.png"], "no library at"),
        (False, ["status"], "no library at"),
        (False, ["--model", "/no/model.pt", "index", "."], "model file not found"),
        (False, ["--model", "{comics}", "index", "."], "model path is a folder, not a .pt file"),
        (True, ["similar", "{comics}/artist0/page0.png", "-k", "0"], "-k must be at least 1"),
        (False, ["embed", "/no/such/dir", "-o", "x.npz"], "path not found"),
        (True, ["index", "{comics}", "--batch-size", "0"], "--batch-size and --workers must be at least 1"),
        (True, ["index", "{comics}", "--workers", "-1"], "--batch-size and --workers must be at least 1"),
        (True, ["map", "--png", "m.png", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_expected_errors_are_one_line_with_exit_1(runner, comics, indexed, args, message):
    if indexed:
        invoke(runner, "index", comics)
    result = invoke(runner, *[a.format(comics=comics) for a in args])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1



def test_eval_refuses_artists_with_one_image_each(runner, comics, tmp_path):
    labels = tmp_path / "singles.csv"  # retrieval scores would be NaN (invalid JSON) before
    labels.write_text("path,artist\n" + "".join(f"{comics}/artist{i}/page0.png,a{i}\n" for i in range(3)))
    result = invoke(runner, "eval", labels, "--json")
    assert result.exit_code == 1 and "at least one artist with two or more images" in result.output, result.output


def test_an_unreadable_query_is_named_in_its_one_line_error(runner, comics, tmp_path):
    invoke(runner, "index", comics)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    good = next(Path(comics).rglob("*.png"))
    for args in (["similar", str(broken)], ["morph", str(good), str(broken)]):
        result = invoke(runner, *args)
        assert result.exit_code == 1 and result.output.strip() == f"Error: {broken}: not a recognised image format"


def test_every_readme_example_parses():
    """Each `stylesearch ...` line of the README's examples is accepted as written (options in
    their place); --help stops it before it runs. Lines listing alternatives (a | b) are skipped."""
    import shlex

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    examples = [shlex.split(line.split("#")[0])[1:]
                for line in readme.splitlines() if line.startswith("    stylesearch ") and " | " not in line]
    assert len(examples) >= 15
    for args in examples:
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)

def test_console_script_errors_without_traceback(env, tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "stylesearch")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    proc = subprocess.run([script, "similar", str(broken)], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("Error:") and len(proc.stderr.strip().splitlines()) == 1
    bomb = tmp_path / "bomb" / "warning-zone.png"  # between Pillow's limit and twice it: Pillow only warns
    bomb.parent.mkdir()
    bomb.write_bytes(png_header_only(10000, 10000))
    proc = subprocess.run([script, "index", str(bomb.parent)], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr  # refused in one line, no Pillow warning
    assert "decompression bomb refused" in proc.stderr


def test_bad_settings_file_and_half_missing_index_are_one_line(runner, comics, env, tmp_path, monkeypatch):
    assert invoke(runner, "index", comics).exit_code == 0
    assert json.loads(invoke(runner, "status", "--json").output)["index"]["fresh"] is True
    index = env / "index.hnsw"
    whole = index.read_bytes()
    index.write_bytes(whole[:1000])  # a cut file is not called fresh
    assert json.loads(invoke(runner, "status", "--json").output)["index"]["fresh"] is False
    index.write_bytes(whole)
    (env / "index.hnsw").unlink()  # the sidecar stays: status reports a stale index, no crash
    status = invoke(runner, "status", "--json")
    assert status.exit_code == 0 and json.loads(status.output)["index"]["fresh"] is False
    settings = tmp_path / "settings.toml"
    settings.write_text("library = 5\n")
    monkeypatch.setenv("STYLESEARCH_CONFIG", str(settings))
    monkeypatch.delenv("STYLESEARCH_LIBRARY")
    result = invoke(runner, "status")
    assert result.exit_code == 1 and "library must be a string" in result.output
    settings.write_text(f"librar = {json.dumps(str(env))}\n")  # a misspelt key is not silently ignored
    result = invoke(runner, "status")
    assert result.exit_code == 1 and "unknown key 'librar'" in result.output
    monkeypatch.setenv("STYLESEARCH_CONFIG", str(tmp_path / "missing.toml"))
    result = invoke(runner, "status")
    assert result.exit_code == 1 and "missing.toml (STYLESEARCH_CONFIG) not found" in result.output


def test_roots_add_counts_new_folders_and_a_new_empty_one_is_reachable(runner, env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "Watching 1 more folder(s)." in invoke(runner, "roots", "add", empty, empty).output
    assert "Already watching every folder given." in invoke(runner, "roots", "add", empty).output
    assert json.loads(invoke(runner, "roots", "list", "--json").output) == [{"path": str(empty), "reachable": True}]


def test_roots_remove_forgets_a_watched_folder_and_refuses_one_that_is_not(runner, comics, env, tmp_path):
    assert invoke(runner, "index", comics).exit_code == 0
    indexed = json.loads(invoke(runner, "status", "--json").output)["counts"]["ok"]
    typo = invoke(runner, "roots", "remove", tmp_path / "comicz")
    assert typo.exit_code == 1 and "not a watched folder" in typo.output
    assert json.loads(invoke(runner, "status", "--json").output)["counts"]["ok"] == indexed > 0  # nothing forgotten
    assert f"Forgot {indexed} file(s)." in invoke(runner, "roots", "remove", f"{comics}/..").output  # holds the root
    assert invoke(runner, "index", comics).exit_code == 0
    assert f"Forgot {indexed} file(s)." in invoke(runner, "roots", "remove", f"{comics}/").output  # the root itself
    assert json.loads(invoke(runner, "roots", "list", "--json").output) == []


def test_similar_says_why_nothing_is_listed(runner, env, tmp_path):
    folder = tmp_path / "reprints"
    save(drawing(seed=3, size=(200, 260)), folder / "cover.png")
    assert invoke(runner, "index", folder).exit_code == 0
    alone = invoke(runner, "similar", folder / "cover.png", "--distinct")
    assert alone.exit_code == 0 and "no other works in the library" in alone.output and "near-duplicates" not in alone.output
    save(drawing(seed=3, size=(200, 260)), folder / "cover-rescan.jpg", quality=80)
    assert invoke(runner, "index", folder).exit_code == 0
    result = invoke(runner, "similar", folder / "cover.png", "--distinct")
    assert result.exit_code == 0 and "near-duplicates of the query (--distinct leaves them out)" in result.output
    assert "cover-rescan.jpg" in invoke(runner, "similar", folder / "cover.png").output
