"""Crash safety, proven by killing: SIGKILL `stylesearch index` and the daemon at seeded
random moments while the folder changes, and check after every kill that nothing committed
was lost.

    .venv/bin/python bench/reliability/crash.py --images 3000 --kills 60 --seed 1

Each round changes the folder (files rewritten, added, deleted, renamed, copied: so later
kills still land mid-indexing and hit every kind of write), starts `stylesearch index` or
(every third round) `stylesearch daemon run` (changing a fifth as much again while it runs), waits a random time (most kills land within
seconds of its first commit, some during startup), freezes it (SIGSTOP), reads what is
committed, and SIGKILLs it. Then: the catalog passes PRAGMA integrity_check; every row
committed before the kill is there, vector byte for byte (a commit in flight at the kill may
also appear, if it matches the disk); the saved HNSW index either loads and agrees with the
catalog or is refused as stale and rebuilt. A final uninterrupted run must leave every image
on disk indexed exactly once, with the vector a fresh embedding gives. Prints one JSON
report; exit status 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from stylesearch.embed import Embedder


class Folder:
    """The image folder and the seeded changes made to it between rounds."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root, self.rng = root, rng
        self.next_seed = 0
        self.names: list[str] = []
        self.rewritten: set[str] = set()  # this round's rewritten files (reset by the caller)

    def add(self, count: int) -> None:
        for _ in range(count):
            name = f"d{self.next_seed % 17}/img{self.next_seed:06d}.png"
            harness.write_image(self.root / name, self.next_seed)
            self.names.append(name)
            self.next_seed += 1

    def change(self, fraction: float) -> dict[str, int]:
        """Rewrite, rename, copy and add about `fraction` of the files each, and delete twice
        as many (the folder keeps its size)."""
        count = max(1, int(len(self.names) * fraction))
        picked = self.rng.sample(self.names, min(len(self.names), 5 * count))
        rewrite, rename, copy, delete = picked[:count], picked[count : 2 * count], picked[2 * count : 3 * count], picked[3 * count :]
        for name in rewrite:
            harness.write_image(self.root / name, 1_000_000 + self.next_seed)
            self.next_seed += 1
        self.rewritten |= set(rewrite)
        for name in delete:
            (self.root / name).unlink()
            self.names.remove(name)
        for name in rename:
            new = f"moved/{self.next_seed}-{Path(name).name}"
            (self.root / new).parent.mkdir(exist_ok=True)
            os.rename(self.root / name, self.root / new)
            self.names[self.names.index(name)] = new
            self.next_seed += 1
        for name in copy:
            new = f"copies/{self.next_seed}-{Path(name).name}"
            (self.root / new).parent.mkdir(exist_ok=True)
            shutil.copy2(self.root / name, self.root / new)
            self.names.append(new)
            self.next_seed += 1
        self.add(count)
        return {"rewritten": len(rewrite), "deleted": len(delete), "renamed": len(rename), "copied": len(copy), "added": count}


def kill_round(mode: str, env: dict, folder: Folder, db: Path, after_first_commit: bool, delay: float, change: float) -> dict:
    """Start the indexer or the daemon, wait `delay` s (from its start, or from its first
    commit), then freeze it, read what is committed, and kill it. The daemon also sees
    `change` of the folder change while it runs (its watcher's batches get killed too)."""
    command = harness.stylesearch("index", "--json") if mode == "index" else harness.stylesearch(
        "daemon", "run", "--settle", "0.2", str(folder.root))
    before, generation = harness.catalog_rows(db), harness.generation(db)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while after_first_commit and harness.generation(db) == generation and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if mode == "daemon":
            folder.change(change)
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill: not a kill, just a completed run
            return {"killed": False, "exit": proc.returncode, "stderr": proc.stderr.read().decode()[-500:]}
        for retries in range(20):  # noqa: B007 - the count goes in the report
            harness.freeze(proc.pid)  # frozen mid-whatever: what is committed now is all that may survive
            try:
                committed = harness.catalog_rows(db, timeout=1)
                break
            except sqlite3.OperationalError:  # frozen holding a lock readers wait for (WAL recovery): a moment later
                os.kill(proc.pid, signal.SIGCONT)
                time.sleep(0.02)
        else:
            raise RuntimeError("could not read the catalog while the process was frozen")
        os.kill(proc.pid, signal.SIGKILL)
        if proc.wait() != -signal.SIGKILL:  # it ended on its own just before
            return {"killed": False, "exit": proc.returncode, "stderr": proc.stderr.read().decode()[-500:]}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    after = harness.catalog_rows(db)
    problems = [] if harness.integrity(db) == "ok" else ["integrity_check failed"]
    # A commit whose WAL frames were written but not yet published to readers when the process
    # froze becomes visible after the kill (SQLite's recovery): it was made, not lost. Such
    # differences must match the disk; anything else is a loss.
    on_disk = {os.fsencode(folder.root / name) for name in folder.names}
    rewritten = {os.fsencode(folder.root / name) for name in folder.rewritten}
    differ = {p for p in committed.keys() | after.keys() if committed.get(p) != after.get(p)}
    lost = [p for p in differ if p in committed and p in on_disk and (p not in after or p not in rewritten)]
    phantom = [p for p in differ if p in after and p not in on_disk]
    if lost or phantom:
        problems.append(f"{len(lost)} committed rows lost or changed, {len(phantom)} rows for files not on disk")
    index_state, index_problems = harness.check_index(db.parent)
    return {"killed": True, "rows_before_run": len(before), "rows_committed": len(committed), "mid_run": committed != before,
            "freeze_retries": retries,
            "lost": len(lost), "in_flight_commit_rows": len(differ) - len(lost) - len(phantom), "index": index_state,
            "problems": problems + index_problems}


def final_check(env: dict, folder: Folder, db: Path, model: Path, samples: int) -> list[str]:
    """An uninterrupted run: every file on disk indexed exactly once, with its own vector."""
    done = harness.run_cli(env, "index", "--json")
    if done.returncode != 0:
        return [f"final run failed: {done.stderr[-500:]}"]
    rows = harness.catalog_rows(db)
    on_disk = {os.fsencode(folder.root / name) for name in folder.names}
    problems = [] if harness.integrity(db) == "ok" else ["integrity_check failed"]
    if set(rows) != on_disk:
        problems.append(f"catalog has {len(set(rows) - on_disk)} rows for no file, misses {len(on_disk - set(rows))} files")
    not_ok = [p for p, (status, _) in rows.items() if status != "ok"]
    if not_ok:
        problems.append(f"{len(not_ok)} files not ok, e.g. {not_ok[0]!r}")
    index_state, index_problems = harness.check_index(db.parent)
    if index_state != "loaded":
        problems.append("the final run did not leave a current index file")
    embedder = Embedder(model, precision="fp32", workers=1)
    for name in random.Random(0).sample(folder.names, min(samples, len(folder.names))):
        stored = np.frombuffer(rows[os.fsencode(folder.root / name)][1], dtype=np.float32)
        if not np.allclose(stored, embedder.embed_file(folder.root / name), atol=1e-4):
            problems.append(f"{name}: stored vector is not this file's")
    return problems + index_problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--startup-kills", type=float, default=0.2,
                        help="share of kills at a random moment of startup (importing torch, loading the model)")
    parser.add_argument("--startup", type=float, default=3.0, help="startup kills land within this many seconds")
    parser.add_argument("--window", type=float, default=2.0, help="other kills land within this many seconds of the first commit")
    parser.add_argument("--change", type=float, default=0.05,
                        help="fraction of the files rewritten, deleted, renamed and copied (each) and added per round")
    parser.add_argument("--model", type=Path, help="default: a tiny random model (fast, same code paths)")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    work = args.work or Path(tempfile.mkdtemp(prefix="stylesearch-crash-"))
    rng = random.Random(args.seed)
    model = args.model or harness.tiny_model(work)
    db = work / "library" / "catalog.sqlite3"
    env = harness.cli_env(work, work / "library", model)
    folder = Folder(work / "images", rng)
    folder.add(args.images)
    harness.run_cli(env, "roots", "add", str(folder.root))  # so `index` with no paths knows the folder
    started = time.monotonic()
    rounds: list[dict] = []
    while sum(r["killed"] for r in rounds) < args.kills:
        folder.rewritten = set()
        changes = folder.change(args.change) if rounds else {}
        mode = "daemon" if len(rounds) % 3 == 2 else "index"
        at_work = rng.random() >= args.startup_kills
        delay = rng.uniform(0, args.window if at_work else args.startup)
        result = {"round": len(rounds), "mode": mode, **kill_round(mode, env, folder, db, at_work, delay, args.change / 5), **changes}
        rounds.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
        if len(rounds) > 3 * args.kills:
            break
    killed = [r for r in rounds if r["killed"]]
    problems = [f"round {r['round']}: {p}" for r in killed for p in r["problems"]]
    problems += [f"round {r['round']}: exited {r['exit']} unkilled: {r['stderr']}" for r in rounds if not r["killed"] and r["exit"]]
    problems += final_check(env, folder, db, model, samples=30)
    report = {
        "images_on_disk": len(folder.names), "files_written": folder.next_seed, "rounds": len(rounds), "kills": len(killed),
        "kills_mid_run": sum(r["mid_run"] for r in killed), "kills_of_daemon": sum(r["mode"] == "daemon" for r in killed),
        "entries_lost": sum(r["lost"] for r in killed),
        "kills_with_a_commit_in_flight": sum(r["in_flight_commit_rows"] > 0 for r in killed), "index_loaded_after_kill": sum(r["index"] == "loaded" for r in killed),
        "index_rebuilt_after_kill": sum(r["index"] == "rebuilt" for r in killed), "seconds": round(time.monotonic() - started, 1),
        "seed": args.seed, "problems": problems,
    }
    print(json.dumps(report))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems or len(killed) < args.kills else 0


if __name__ == "__main__":
    sys.exit(main())
