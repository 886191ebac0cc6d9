"""What the reliability scripts share: a tiny model, generated images, the CLI as a child
process with an isolated environment, and the checks that a library agrees with itself.

The tiny model (ResNet18 at 32 px, 16-d, random weights) exercises every code path of the
real one at a fraction of the CPU; `--model` in each script picks another.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from stylesearch.library.ann import AnnIndex  # noqa: E402
from stylesearch.library.folder import Library  # noqa: E402

from conftest import make_model  # noqa: E402
from samples import drawing  # noqa: E402


def tiny_model(folder: Path) -> Path:
    return make_model(folder / "tiny.pt", seed=1)


def write_image(path: Path, seed: int) -> None:
    """A small PNG drawing (its content, and so its vector, follows the seed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    drawing(seed=seed, size=(64, 80), style=seed % 3).save(path, "PNG")


def cli_env(work: Path, library: Path, model: Path) -> dict[str, str]:
    """Environment for a `stylesearch` child: its own library, model, socket and no user config."""
    return {**os.environ, "STYLESEARCH_LIBRARY": str(library), "STYLESEARCH_MODEL": str(model),
            "STYLESEARCH_CONFIG": os.devnull, "STYLESEARCH_SOCKET": str(work / "run" / "daemon.sock"),
            "OMP_NUM_THREADS": "1"}


def stylesearch(*args: str) -> list[str]:
    return [sys.executable, "-m", "stylesearch", "--precision", "fp32", *args]


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(stylesearch(*args), env=env, capture_output=True, text=True, timeout=timeout)


def catalog_rows(db_path: Path, timeout: float = 30) -> dict[bytes, tuple]:
    """path -> (status, vector bytes) of every row, read as any reader would (WAL snapshot)."""
    if not db_path.exists():
        return {}
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=timeout)
    try:
        return {path: (status, vector) for path, status, vector in con.execute("SELECT path, status, vector FROM files")}
    finally:
        con.close()


def generation(db_path: Path) -> int | None:
    """The catalog generation (bumped by every commit that changes files), None before it exists."""
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:
        return None
    try:
        row = con.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else None
    except sqlite3.OperationalError:  # created, schema not yet
        return None
    finally:
        con.close()


def freeze(pid: int, timeout: float = 30) -> None:
    """SIGSTOP `pid` and wait until every thread has stopped: a thread inside a system call
    (a commit's write or fsync) finishes it first, and that commit then counts as made."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat") as fh:
                    states.append(fh.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:  # a thread that just ended
                continue
        if all(state in "tTZX" for state in states):  # stopped, or already ended
            return
        time.sleep(0.001)
    raise TimeoutError(f"process {pid} did not stop: thread states {states}")


def integrity(db_path: Path) -> str:
    con = sqlite3.connect(db_path, timeout=30)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def check_index(library: Path) -> tuple[str, list[str]]:
    """('loaded' | 'rebuilt' | 'none', problems): the saved HNSW index is used only if it is
    intact and current; either way the index in use must hold exactly the searchable rows."""
    problems: list[str] = []
    with Library(library) as lib:
        if lib.model_id is None:
            return "none", problems
        ids, vectors = lib.catalog.searchable(lib.model_id)
        saved = AnnIndex.load(lib.ann_path, model_id=lib.model_id, generation=lib.catalog.generation, dim=vectors.shape[1] if len(ids) else 1)
        ann = lib.ann()
        if ann.live != len(ids):
            problems.append(f"index holds {ann.live} vectors, catalog {len(ids)}")
        by_id = dict(zip(ids.tolist(), vectors, strict=True))
        for vector in vectors[:: max(1, len(vectors) // 200)]:  # up to ~200 probes
            found, distance = ann.query(vector, 1)
            if not len(found) or distance[0] > 1e-4 or int(found[0]) not in by_id:
                problems.append(f"a searchable vector is not its own nearest neighbour ({found}, {distance})")
                break
    return ("loaded" if saved is not None else "rebuilt"), problems
