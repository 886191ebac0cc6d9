"""Concurrent use: the daemon answering 4 processes that issue `similar` and `morph` in a
loop while files are added to and deleted from the watched folder.

    .venv/bin/python bench/reliability/concurrent.py --seconds 60

Queries name the folder's first files (never deleted) and a file outside the library. An
answer is wrong if it names a file that never existed during the run, is out of distance
order, or a morph that does not run from A to B. Prints one JSON report (errors, wrong
answers, p50/p95/max latency per operation); exit status 1 on any error or wrong answer.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from stylesearch.daemon import client


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (client.DaemonUnavailable, client.DaemonError):
            pass
        time.sleep(0.1)
    return False


def problem_with(op: str, args: dict, result) -> str | None:
    """Why an answer is malformed (paths are checked against the run's files later)."""
    if op == "similar":
        distances = [hit["distance"] for hit in result]
        if len(result) != args["k"] or distances != sorted(distances):
            return f"similar: {len(result)} hits (k={args['k']}) or out of order"
        return None
    steps = result["steps"]
    if steps[0]["path"] != args["a"] or steps[-1]["path"] != args["b"]:
        return "morph does not run from A to B"
    return None


def answer_paths(op: str, result) -> list[str]:
    return [hit["path"] for hit in result] if op == "similar" else [step["path"] for step in result["steps"]]


def client_loop(socket: str, queries: list[str], seconds: float, seed: int) -> dict:
    """One querying process: (latencies per op, errors, malformed answers, every path answered)."""
    os.environ["STYLESEARCH_SOCKET"] = socket
    rng = random.Random(seed)
    latencies: dict[str, list[float]] = {"similar": [], "morph": []}
    errors, malformed, named = [], [], set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        op = rng.choice(["similar", "morph"])
        args = {"query": rng.choice(queries), "k": 10} if op == "similar" else {"a": rng.choice(queries), "b": rng.choice(queries), "k": 10}
        started = time.perf_counter()
        try:
            result = client.request(op, args, timeout=60)
        except Exception as exc:  # noqa: BLE001 - every failure is counted, whatever it is
            errors.append(f"{op}: {type(exc).__name__}: {exc}")
            continue
        latencies[op].append(time.perf_counter() - started)
        if why := problem_with(op, args, result):
            malformed.append(why)
        named.update(answer_paths(op, result))
    return {"latencies": latencies, "errors": errors, "malformed": malformed, "named": sorted(named)}


def churn(root: Path, seconds: float, rng: random.Random, first_seed: int) -> tuple[set[str], int, int]:
    """Add a file or delete one added earlier, every ~0.1 s. Returns every path that existed."""
    existed, added, deleted, seed = set(), [], 0, first_seed
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if added and rng.random() < 0.4:
            os.unlink(added.pop(rng.randrange(len(added))))
            deleted += 1
        else:
            path = root / "churn" / f"c{seed}.png"
            harness.write_image(path, seed)
            existed.add(str(path))
            added.append(path)
            seed += 1
        time.sleep(rng.uniform(0.05, 0.15))
    return existed, seed - first_seed, deleted


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", type=Path, help="default: a tiny random model (fast, same code paths)")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="stylesearch-concurrent-"))
    model = args.model or harness.tiny_model(work)
    root, library = work / "images", work / "library"
    env = harness.cli_env(work, library, model)
    for i in range(args.images):
        harness.write_image(root / f"base/b{i:05d}.png", i)
    outside = work / "outside.png"
    harness.write_image(outside, 999_999)
    existed = {str(root / f"base/b{i:05d}.png") for i in range(args.images)}
    daemon = subprocess.Popen(harness.stylesearch("daemon", "run", "--settle", "0.2", str(root)), env=env,
                              stdout=subprocess.DEVNULL, stderr=open(work / "daemon.log", "w"))  # noqa: SIM115
    os.environ.update(env)
    problems: list[str] = []
    try:
        if not wait_for(lambda: client.request("status")["counts"]["ok"] == args.images, timeout=120):
            raise SystemExit(f"the daemon did not index the folder: {(work / 'daemon.log').read_text()[-2000:]}")
        queries = sorted(existed)[:50] + [str(outside)]
        with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
            pending = [pool.apply_async(client_loop, (env["STYLESEARCH_SOCKET"], queries, args.seconds, args.seed + n))
                       for n in range(args.clients)]
            churned, added, deleted = churn(root, args.seconds, random.Random(args.seed), args.images)
            results = [p.get(timeout=args.seconds + 120) for p in pending]
        existed |= churned | {str(outside)}
        errors = [e for r in results for e in r["errors"]]
        malformed = [m for r in results for m in r["malformed"]]
        never = sorted({p for r in results for p in r["named"]} - existed)
        latencies = {op: [t for r in results for t in r["latencies"][op]] for op in ("similar", "morph")}
        alive = daemon.poll() is None and wait_for(lambda: client.request("status")["queue"] == 0, timeout=30)
        report = {
            "seconds": args.seconds, "clients": args.clients, "files_added": added, "files_deleted": deleted,
            "requests": sum(map(len, latencies.values())) + len(errors), "errors": len(errors), "wrong_answers": len(malformed) + len(never),
            **{f"{op}_ms": {"n": len(ts), "p50": percentile(ts, 50), "p95": percentile(ts, 95), "max": percentile(ts, 100)}
               for op, ts in latencies.items()},
            "all_p95_ms": percentile(latencies["similar"] + latencies["morph"], 95), "daemon_alive": alive,
            "examples": (errors[:3] + malformed[:3] + never[:3]),
        }
        problems = errors + malformed + never + ([] if alive else ["the daemon died or never settled"])
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    if daemon.returncode != 0:
        problems.append(f"daemon exited {daemon.returncode}")
    print(json.dumps(report))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
