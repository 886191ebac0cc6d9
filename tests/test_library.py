import os
import shutil
import sqlite3

import numpy as np
import pytest

from stylesearch.embed import Embedder
from stylesearch.errors import StyleSearchError
from stylesearch.library import scan
from stylesearch.library.folder import Library
from stylesearch.library.indexer import index_paths
from stylesearch.search.similar import similar

from samples import drawing, save


@pytest.fixture
def lib(tmp_path):
    with Library(tmp_path / "lib", create=True) as library:
        yield library


class Counting:
    """Wraps an Embedder and counts images that reach the model."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.embedded = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, jobs, load=None):
        for job, vector, error in self.inner.stream(jobs, load):
            self.embedded += vector is not None
            yield job, vector, error


def run(lib, paths, embedder, **options):
    counting = Counting(embedder)
    summary = index_paths(lib, [str(p) for p in paths], counting, **options)
    return summary, counting.embedded


def vectors_by_path(lib):
    rows = lib.catalog.db.execute("SELECT path, vector FROM files WHERE vector IS NOT NULL")
    return {os.fsdecode(p): np.frombuffer(v, dtype=np.float32) for p, v in rows}


def ann_agrees_with_catalog(lib):
    """The saved index loads, is fresh, and finds every searchable vector as its own nearest."""
    ann = lib.ann()
    ids, vectors = lib.catalog.searchable(lib.model_id)
    assert ann.live == len(ids)
    for vector in vectors:
        found, distances = ann.query(vector, 1)
        assert distances[0] < 1e-3 and lib.catalog.vector(int(found[0])) is not None


def test_index_then_reindex_skips_unchanged(lib, comics, embedder):
    summary, embedded = run(lib, [comics], embedder)
    assert (summary.added, summary.failed, embedded) == (12, 0, 12)
    assert lib.catalog.counts() == {"ok": 12, "failed": 0, "offline": 0}
    summary, embedded = run(lib, [comics], embedder)
    assert (summary.unchanged, summary.added, embedded) == (12, 0, 0)
    ann_agrees_with_catalog(lib)


def test_changed_file_is_re_embedded_and_touched_file_is_not(lib, comics, embedder):
    run(lib, [comics], embedder)
    changed = comics / "artist0" / "page0.png"
    save(drawing(seed=99, style=2), changed)
    touched = comics / "artist1" / "page1.png"
    os.utime(touched, ns=(1, 1))
    before = vectors_by_path(lib)
    summary, embedded = run(lib, [comics], embedder)
    assert (summary.updated, summary.unchanged, embedded) == (1, 11, 1)
    after = vectors_by_path(lib)
    assert not np.allclose(before[str(changed)], after[str(changed)])
    assert np.array_equal(before[str(touched)], after[str(touched)])


def test_move_and_copy_reuse_vectors_without_the_model(lib, comics, embedder):
    run(lib, [comics], embedder)
    before = vectors_by_path(lib)
    old = comics / "artist0" / "page0.png"
    new = comics / "elsewhere" / "renamed.png"
    new.parent.mkdir()
    os.rename(old, new)
    shutil.copy(comics / "artist1" / "page1.png", comics / "copy.png")
    old_id = lib.catalog.row(os.fsencode(old)).id
    summary, embedded = run(lib, [comics], embedder)
    assert (summary.moved, summary.added, summary.removed, embedded) == (1, 1, 0, 0)
    after = vectors_by_path(lib)
    assert np.array_equal(after[str(new)], before[str(old)]) and str(old) not in after
    assert np.array_equal(after[str(comics / "copy.png")], before[str(comics / "artist1" / "page1.png")])
    assert lib.catalog.row(os.fsencode(new)).id == old_id  # same row, same ANN label
    ann_agrees_with_catalog(lib)


def test_deleted_files_and_folders_are_removed(lib, comics, embedder):
    run(lib, [comics], embedder)
    shutil.rmtree(comics / "artist2")
    (comics / "artist0" / "page3.png").unlink()
    summary, _ = run(lib, [comics], embedder)
    assert summary.removed == 5 and lib.catalog.counts()["ok"] == 7
    ann_agrees_with_catalog(lib)


def test_unreachable_root_goes_offline_not_deleted(lib, comics, embedder, tmp_path):
    run(lib, [comics], embedder)
    hidden = tmp_path / "unmounted"
    os.rename(comics, hidden)
    summary, _ = run(lib, [comics], embedder)
    assert summary.offline == 12 and summary.removed == 0
    assert lib.catalog.counts() == {"ok": 0, "failed": 0, "offline": 12}
    assert lib.ann().live == 0  # offline works are not offered as results
    os.rename(hidden, comics)
    summary, embedded = run(lib, [comics], embedder)
    assert (summary.unchanged, embedded) == (12, 0)
    assert lib.catalog.counts()["ok"] == 12
    ann_agrees_with_catalog(lib)


def test_failures_are_recorded_and_the_batch_goes_on(lib, comics, embedder):
    (comics / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (comics / "empty.png").write_bytes(b"")
    os.mkfifo(comics / "pipe.png")
    summary, _ = run(lib, [comics], embedder)
    assert summary.added == 12 and summary.failed == 3
    reasons = {os.path.basename(os.fsdecode(p)): e for p, e in lib.catalog.failed()}
    assert set(reasons) == {"broken.jpg", "empty.png", "pipe.png"}
    assert all(r and "\n" not in r for r in reasons.values())
    summary, embedded = run(lib, [comics], embedder)  # failures are not retried unless asked
    assert (summary.failed, embedded) == (0, 0)  # the FIFO too: listed again only if its reason changes
    assert {os.path.basename(os.fsdecode(p)) for p, _ in lib.catalog.failed()} == set(reasons)
    assert run(lib, [comics], embedder, retry_failed=True)[0].failed == 3
    (comics / "broken.jpg").unlink()
    save(drawing(seed=1), comics / "broken.jpg")
    summary, embedded = run(lib, [comics], embedder)
    assert summary.updated == 1 and embedded == 1


def test_odd_file_names_survive(lib, tmp_path, embedder):
    root = tmp_path / "odd"
    root.mkdir()
    names = [b"new\nline.png", b"latin1-\xe9t\xe9.png", "日本語 cover.png".encode()]
    for i, name in enumerate(names):
        save(drawing(seed=i), root / os.fsdecode(name))
    summary, _ = run(lib, [root], embedder)
    assert summary.added == 3
    stored = {os.path.basename(p) for p in (r.path for r in lib.catalog.rows_at(os.fsencode(root)))}
    assert stored == set(names)
    hits = similar(lib, root / os.fsdecode(names[1]), k=5, make_embedder=lambda _: embedder)
    assert len(hits) == 2


def test_hidden_folders_and_unsupported_files_are_skipped(lib, comics, embedder):
    save(drawing(), comics / ".thumbnails" / "t.png")
    (comics / "notes.txt").write_text("hello")
    summary, _ = run(lib, [comics], embedder)
    assert summary.added == 12 and summary.failed == 0


def test_symlink_loops_do_not_hang(lib, comics, embedder):
    os.symlink(comics, comics / "artist0" / "loop")
    os.symlink("self-loop.png", comics / "self-loop.png")
    summary, _ = run(lib, [comics], embedder)
    assert summary.added == 12 and summary.failed == 1  # the looping link is reported, the folder link not followed


def test_index_is_rebuilt_when_missing_or_damaged(lib, comics, embedder):
    run(lib, [comics], embedder)
    query = comics / "artist1" / "page0.png"
    expected = similar(lib, query, k=5, make_embedder=lambda _: embedder)
    lib.ann_path.write_bytes(b"garbage")
    assert similar(lib, query, k=5, make_embedder=lambda _: embedder) == expected
    lib.ann_path.unlink()
    assert similar(lib, query, k=5, make_embedder=lambda _: embedder) == expected
    run(lib, [comics], embedder, rebuild=True)
    ann_agrees_with_catalog(lib)


def test_stale_index_after_a_crash_is_rebuilt_from_the_catalog(lib, comics, embedder):
    run(lib, [comics], embedder)
    with lib.catalog.transaction():  # as if a run committed rows and died before saving the index
        lib.catalog.delete([lib.catalog.row(os.fsencode(comics / "artist0" / "page0.png")).id])
        lib.catalog.bump_generation()
    ann = lib.ann()
    assert ann.live == 11
    summary, embedded = run(lib, [comics], embedder)
    assert (summary.added, embedded) == (1, 1)
    ann_agrees_with_catalog(lib)


def test_other_model_never_mixes_vectors(lib, comics, embedder, other_model):
    run(lib, [comics], embedder)
    other = Embedder(other_model, batch_size=4)
    query = comics / "artist0" / "page1.png"
    with pytest.raises(StyleSearchError, match="indexed with model"):
        similar(lib, query, k=3, model=other_model, make_embedder=lambda _: other)
    summary, embedded = run(lib, [comics], other)
    assert (summary.updated, embedded) == (12, 12)
    assert lib.model_id == other.info.model_id
    models = {m for (m,) in lib.catalog.db.execute("SELECT DISTINCT model_id FROM files")}
    assert models == {other.info.model_id}
    assert len(similar(lib, query, k=3, model=other_model, make_embedder=lambda _: other)) == 3


def test_similar_ranks_by_distance_and_excludes_self(lib, comics, embedder, tmp_path):
    run(lib, [comics], embedder)
    query = comics / "artist2" / "page3.png"
    hits = similar(lib, query, k=20, make_embedder=lambda _: embedder)
    assert len(hits) == 11 and str(query) not in [h.path for h in hits]
    assert [h.rank for h in hits] == list(range(1, 12))
    assert all(a.distance <= b.distance for a, b in zip(hits, hits[1:], strict=False))
    with_self = similar(lib, query, k=1, include_self=True, make_embedder=lambda _: embedder)
    assert with_self[0].path == str(query) and with_self[0].distance < 1e-3
    # an image outside the library is embedded on the fly; a copy of an indexed page finds it first
    outside = tmp_path / "outside.png"
    shutil.copy(query, outside)
    assert similar(lib, outside, k=1, make_embedder=lambda _: embedder)[0].path == str(query)
    exact = np.linalg.norm(vectors_by_path(lib)[hits[0].path] - lib.catalog.vector(lib.catalog.row(os.fsencode(query)).id))
    assert hits[0].distance == pytest.approx(exact, rel=1e-4)


def test_second_writer_is_refused_with_a_clear_error(lib, comics, embedder):
    with lib.writer(), Library(lib.folder) as second:  # as another process would open it
        with pytest.raises(StyleSearchError, match="another stylesearch process"):
            run(second, [comics], embedder)
        run(lib, [comics], embedder)  # the holder itself may write (the daemon does)


def test_catalog_is_wal_and_passes_integrity_check(lib, comics, embedder):
    run(lib, [comics], embedder)
    db = sqlite3.connect(lib.catalog.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_missing_library_is_not_created_by_readers(tmp_path):
    with pytest.raises(StyleSearchError, match="no library"):
        Library(tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_an_emptied_root_loses_its_works_and_stays_reachable(lib, comics, embedder):
    """Emptied on purpose (the folder stays on its file system): its works are gone, not
    offline; only an unmounted drive's mount point keeps them (next tests)."""
    run(lib, [comics], embedder)
    for folder in comics.iterdir():
        shutil.rmtree(folder)
    summary, _ = run(lib, [comics], embedder)
    assert (summary.removed, summary.offline) == (12, 0)
    assert lib.catalog.counts() == {"ok": 0, "failed": 0, "offline": 0}
    assert scan.watched_roots(lib.catalog) == [(os.fsencode(comics), True)]


def test_unmounted_drive_goes_offline_and_comes_back_unchanged(lib, comics, embedder, tmp_path, tmpfs):
    drive = tmp_path / "drive"  # a mount point
    with tmpfs(drive):
        shutil.copytree(comics, drive / "comics")
        run(lib, [drive], embedder)
    summary, _ = run(lib, [drive], embedder)  # unmounted: the empty mount point stays
    assert (summary.removed, summary.offline) == (0, 12)
    assert lib.catalog.counts() == {"ok": 0, "failed": 0, "offline": 12}
    assert scan.watched_roots(lib.catalog) == [(os.fsencode(drive), False)]
    with tmpfs(drive):  # plugged in again: the same files (copytree keeps their times)
        shutil.copytree(comics, drive / "comics")
        summary, embedded = run(lib, [drive], embedder)
        assert (summary.unchanged, embedded, summary.removed) == (12, 0, 0)
        assert lib.catalog.counts()["ok"] == 12


def test_unmounted_root_inside_another_root_is_offline_not_deleted(lib, comics, embedder, tmp_path, tmpfs):
    inner = comics / "artist1"
    saved = tmp_path / "saved"
    shutil.copytree(inner, saved)
    shutil.rmtree(inner)
    with tmpfs(inner):  # artist1 is a drive mounted inside the comics folder
        shutil.copytree(saved, inner, dirs_exist_ok=True)
        run(lib, [inner], embedder)
        run(lib, [comics], embedder)  # two roots, one inside the other
        assert lib.catalog.counts()["ok"] == 12
    every_root = [os.fsdecode(r) for r in lib.catalog.roots()]  # as `stylesearch index` with no paths
    summary, _ = run(lib, every_root, embedder)  # unmounted: an empty mount point stays
    assert (summary.removed, summary.offline) == (0, 4)
    assert lib.catalog.counts() == {"ok": 8, "failed": 0, "offline": 4}
    with tmpfs(inner):
        shutil.copytree(saved, inner, dirs_exist_ok=True)
        summary, embedded = run(lib, every_root, embedder)
    assert (summary.unchanged, summary.added, embedded) == (12, 0, 0)  # back, counted once, nothing re-embedded


def test_a_catalog_made_before_root_devices_is_upgraded(tmp_path, comics, embedder):
    folder = tmp_path / "old-lib"
    with Library(folder, create=True) as library:
        run(library, [comics], embedder)
    con = sqlite3.connect(folder / "catalog.sqlite3")
    con.execute("ALTER TABLE roots DROP COLUMN device")  # as a catalog from before 2026-11-28
    con.commit()
    con.close()
    with Library(folder) as library:
        assert library.catalog.root_devices() == {}  # nothing recorded: an empty root would read as unmounted
        run(library, [comics], embedder)
        assert library.catalog.root_devices() == {os.fsencode(comics): os.stat(comics).st_dev}
        assert library.catalog.counts()["ok"] == 12
