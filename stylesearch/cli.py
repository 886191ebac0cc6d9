"""The `stylesearch` command. Thin: parse options, call the library, print.

People get rich tables and progress bars on the terminal; programs get `--json` on stdout.
Expected failures are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__, config
from .errors import StyleSearchError
from .formats import shown
from .integrations.digikam import digikam, plugins_digikam
from .train.config import FinetuneConfig, PretrainConfig

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_rows(items, as_json: bool, header: str, row) -> None:
    """Results as JSON lines (`to_dict()` each), or a bold header and one plain line per
    item: not a table, so a path is never shortened or folded; people copy it."""
    if as_json:
        for item in items:
            click.echo(json.dumps(item.to_dict()))
        return
    out.print(f"[bold]{header}[/]")
    for item in items:
        out.print(row(item))


class _Group(click.Group):
    """Turns expected errors into click's one-line `Error: ...` and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StyleSearchError as exc:
            raise click.ClickException(str(exc)) from None
        except sqlite3.Error as exc:
            raise click.ClickException(f"catalog error: {exc}") from None
        except OSError as exc:
            where = f": {os.fsdecode(exc.filename)}" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None


class _State:
    def __init__(self, settings: config.Settings, precision: str) -> None:
        self.settings = settings
        self.precision = precision

    def library(self, create: bool = False):
        from .library.folder import Library

        return Library(self.settings.library, create=create)

    def embedder(self, model: Path | None = None, **options):
        from .embed import Embedder  # imports torch: only on paths that need the model

        return Embedder(model or self.settings.model, device=self.settings.device, precision=self.precision, **options)


    def daemon(self, op: str, args: dict):
        """The running daemon's answer, or None when none serves this library and model
        (the caller then works in-process, with identical output)."""
        from .daemon import client

        if os.environ.get("STYLESEARCH_NO_DAEMON"):
            return None
        if self.settings.model:
            args = {**args, "model": str(Path(self.settings.model).expanduser().resolve())}
        try:
            return client.request(op, args, library=str(self.settings.library.expanduser().resolve()))
        except client.DaemonUnavailable:
            return None
        except client.DaemonError as exc:
            raise StyleSearchError(str(exc)) from None


pass_state = click.make_pass_decorator(_State)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--library", metavar="DIR", help="Library folder (default: the user data dir; env STYLESEARCH_LIBRARY).")
@click.option("--model", metavar="PATH", help="Model checkpoint (default: the bundled model; env STYLESEARCH_MODEL).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), help="Where the model runs (default: auto).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Inference precision; auto = bf16 where the hardware has it.")
@click.version_option(__version__, prog_name="stylesearch")
@click.pass_context
def cli(ctx: click.Context, library: str | None, model: str | None, device: str | None, precision: str) -> None:
    """Find works drawn in a similar art style, offline.

    \b
    Start by indexing your folders, then ask for look-alikes:
      stylesearch index ~/Comics ~/Illustrations
      stylesearch similar ~/Comics/x/cover.jpg -k 10
    """
    try:
        ctx.obj = _State(config.resolve(library, model, device), precision)
    except StyleSearchError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--rebuild", is_flag=True, help="Rebuild the search index from the catalog (no re-embedding).")
@click.option("--retry-failed", is_flag=True, help="Try again files that failed before and have not changed.")
@click.option("--batch-size", default=32, show_default=True, help="Images per model call.")
@click.option("--workers", type=int, help="Decoding threads (default: one per CPU core).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@pass_state
def index(state: _State, paths: tuple[str, ...], rebuild: bool, retry_failed: bool, batch_size: int, workers: int | None, as_json: bool) -> None:
    """Index images and comic archives under PATHS (files or folders, recursive).

    Unchanged files are skipped, moved files keep their vectors, files gone from a folder
    are removed, and a folder that is not reachable (unmounted drive) is marked offline.
    With no PATHS, every folder indexed before is brought up to date.
    """
    from .library.indexer import index_paths

    if batch_size < 1 or (workers is not None and workers < 1):
        raise StyleSearchError("--batch-size and --workers must be at least 1")
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing and len(missing) == len(paths):
        raise StyleSearchError(f"path not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    request = {"paths": [os.path.abspath(p) for p in paths if p not in missing], "as_roots": True, "retry_failed": retry_failed}
    if not rebuild and not missing and (queued := state.daemon("enqueue" if paths else "rescan", request)):
        message = {"queued": queued["queued"], "daemon": True}
        click.echo(json.dumps(message)) if as_json else out.print(
            f"The running daemon will index {queued['queued']} path(s); see `stylesearch daemon status`.")
        return
    with state.library(create=True) as lib:
        targets = list(paths) or [os.fsdecode(r) for r in lib.catalog.roots()]
        if not targets and not rebuild:
            raise StyleSearchError("nothing to index: give one or more folders or files")
        embedder = state.embedder(batch_size=batch_size, workers=workers)
        with _progress(disabled=as_json) as (on_plan, on_file):
            summary = index_paths(lib, targets, embedder, retry_failed=retry_failed, rebuild=rebuild, on_plan=on_plan, on_file=on_file)
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
    else:
        counts = ", ".join(f"{n} {name}" for name in ("added", "updated", "moved", "unchanged", "removed", "failed", "offline")
                           if (n := getattr(summary, name)) or name in ("added", "unchanged", "failed"))
        out.print(f"Indexed: {counts}")
        for path, reason in summary.errors[:20]:
            err.print(f"  failed: {shown(path)}: {reason}", markup=False)
        if len(summary.errors) > 20:
            err.print(f"  ... and {len(summary.errors) - 20} more (stylesearch status --failed)")
    for path in summary.missing:
        click.echo(f"Error: path not found: {path}", err=True)
    if summary.missing:
        sys.exit(1)


@contextmanager
def _progress(disabled: bool) -> Iterator[tuple[Callable[[int], None], Callable[[bytes], None]]]:
    """A rich progress bar (files, files/s, ETA) on stderr, driven by two callbacks."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]Indexing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} files/s"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=err, disable=disabled or not err.is_terminal,
    )
    task = progress.add_task("index", total=None, rate="-")

    def on_file(_path: bytes) -> None:
        progress.advance(task)
        speed = progress.tasks[0].speed
        progress.update(task, rate=f"{speed:.1f}" if speed else "-")

    with progress:
        yield (lambda n: progress.update(task, total=n)), on_file


def _picture_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A picture is written in the type its name ends with, so the name must end with one
    Pillow can write (checked before any work, not after the search)."""
    if value is None:
        return None
    from PIL import Image

    if value.suffix.lower() not in {ext for ext, kind in Image.registered_extensions().items() if kind in Image.SAVE}:
        raise click.BadParameter(f"cannot tell the picture type of {shown(value.name)!r}: end the name with .png (or .jpg, .webp)")
    return value


_PICTURE_OPTIONS = [
    click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path), callback=_picture_file,
                 help="Also write a contact sheet (PNG, or the type the name ends with: .jpg, .webp)."),
    click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path),
                 help="Also write a self-contained HTML gallery (opens offline, readable on a phone)."),
]


def _stack(options: list):
    """A decorator applying a shared list of click options, in order."""

    def decorate(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


_picture_options = _stack(_PICTURE_OPTIONS)


def _pictures(tiles: list, title: str, sheet: Path | None, html_out: Path | None, columns: int = 5) -> None:
    if not (sheet or html_out):
        return
    from .search.render import contact_sheet, html_gallery

    if sheet:
        contact_sheet(tiles, sheet, title, columns=columns)
        err.print(f"Wrote {sheet}", markup=False)
    if html_out:
        html_gallery(tiles, html_out, title)
        err.print(f"Wrote {html_out}", markup=False)


@cli.command()
@click.argument("query", type=click.Path(path_type=str))
@click.option("-k", "k", default=10, show_default=True, help="How many works to list.")
@click.option("--include-self", is_flag=True, help="List the query itself when it is indexed.")
@click.option("--distinct", is_flag=True, help="Leave out near-duplicates (reprints, rescans) of the query and of each other.")
@_picture_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: rank, distance, path.")
@pass_state
def similar(state: _State, query: str, k: int, include_self: bool, distinct: bool, sheet: Path | None,
            html_out: Path | None, as_json: bool) -> None:
    """List the indexed works whose art style is closest to QUERY.

    QUERY is any image or comic archive, indexed or not. Distance is Euclidean between
    style vectors: smaller is more alike.
    """
    from .search.render import Tile
    from .search.similar import Hit

    def find(k: int, distinct: bool) -> list[Hit]:
        answer = state.daemon("similar", {"query": os.path.abspath(query), "k": k, "include_self": include_self,
                                          "distinct": distinct})
        if answer is not None:
            return [Hit(h["rank"], h["distance"], h["path"]) for h in answer]
        from .search.similar import similar as run_similar

        with state.library() as lib:
            return run_similar(lib, query, k=k, include_self=include_self, distinct=distinct, model=state.settings.model,
                               make_embedder=state.embedder)

    hits = find(k, distinct)
    if not hits:  # say why, instead of a bare header (stderr: --json stays empty)
        only_copies = distinct and find(1, False)
        err.print("no other works in the library" + (" but near-duplicates of the query (--distinct leaves them out)"
                                                      if only_copies else ""), markup=False)
    _print_rows(hits, as_json, f"{'rank':>4}  {'distance':>9}  path",
                lambda hit: f"{hit.rank:>4}  {hit.distance:>9.4f}  {escape(shown(hit.path))}")
    tiles = [Tile(os.path.abspath(query), "query")] + [Tile(h.path, f"#{h.rank}  {h.distance:.4f}") for h in hits]
    _pictures(tiles, f"Works in the style of {os.path.basename(query)}", sheet, html_out)


@cli.command()
@click.argument("a", type=click.Path(path_type=str))
@click.argument("b", type=click.Path(path_type=str))
@click.option("--k", "k", default=5, show_default=True, help="Neighbours per work in the style graph (paper: 5).")
@click.option("--steps", type=int, help="Resample the path to this many evenly spaced works (A and B included).")
@_picture_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line: step, path, distance_to_a, distance_to_b.")
@pass_state
def morph(state: _State, a: str, b: str, k: int, steps: int | None, sheet: Path | None, html_out: Path | None,
          as_json: bool) -> None:
    """List works whose style moves step by step from A to B.

    The path is the shortest route from A to B through a graph linking every indexed work
    to its k nearest styles (the paper's art style morphing). A and B may be outside the
    library. The graph is built once and reused until the library changes.
    """
    from .search.morph import Step
    from .search.render import Tile

    answer = state.daemon("morph", {"a": os.path.abspath(a), "b": os.path.abspath(b), "k": k, "steps": steps})
    if answer is None:
        from .search.morph import answer as morph_answer
        from .search.morph import morph as run_morph

        with state.library() as lib:
            answer = morph_answer(*run_morph(lib, a, b, k=k, steps=steps, model=state.settings.model,
                                             make_embedder=state.embedder))
    path = [Step(s["step"], s["path"], s["distance_to_a"], s["distance_to_b"]) for s in answer["steps"]]
    _print_rows(path, as_json, f"{'step':>4}  {'to A':>9}  {'to B':>9}  path",
                lambda step: f"{step.index:>4}  {step.to_a:>9.4f}  {step.to_b:>9.4f}  {escape(shown(step.path))}")
    if not as_json:
        g = answer["graph"]
        err.print(f"style graph: {g['works']} works, k={g['k']}, built in {g['build_seconds']:.2f} s", markup=False)
    tiles = [Tile(s.path, f"{s.index}  A {s.to_a:.3f}  B {s.to_b:.3f}") for s in path]
    _pictures(tiles, f"Style morph: {os.path.basename(a)} -> {os.path.basename(b)}", sheet, html_out,
              columns=min(len(tiles), 8))


@cli.command("map")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the map as an HTML page.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), callback=_picture_file,
              help="Write the map as a PNG (or the type the name ends with: .jpg, .webp).")
@click.option("--color-by", type=click.Choice(["folder", "root", "none"]), default="folder", show_default=True,
              help="Colour each work by its folder (e.g. one per artist), its indexed root, or not at all.")
@click.option("--under", type=click.Path(path_type=str), help="Only works below this folder.")
@click.option("--limit", type=int, default=2000, show_default=True, help="At most this many works (a seeded random sample).")
@click.option("--method", type=click.Choice(["auto", "tsne", "pca"]), default="auto", show_default=True,
              help="auto = t-SNE up to 5,000 works, PCA beyond.")
@click.option("--seed", default=0, show_default=True, help="Sampling and t-SNE seed.")
@pass_state
def style_map(state: _State, html_out: Path | None, png: Path | None, color_by: str, under: str | None, limit: int,
              method: str, seed: int) -> None:
    """Draw the library's style space in 2-D: works drawn alike land close together."""
    import numpy as np

    from .library.scan import normalise
    from .search.render import layout, map_html, map_png

    if not (html_out or png):
        raise StyleSearchError("give --html FILE and/or --png FILE")
    if limit < 1:
        raise StyleSearchError("--limit must be at least 1")
    with state.library() as lib:
        ids, vectors = lib.catalog.searchable(lib.model_id or "")
        if under:
            inside = set(lib.catalog.ok_paths_under(normalise(under)))
            keep = [i for i, file_id in enumerate(ids) if file_id in inside]
        else:
            keep = list(range(len(ids)))
        if len(keep) > limit:  # sample first: only the drawn works' paths are fetched
            keep = sorted(np.random.default_rng(seed).choice(keep, limit, replace=False))
        paths = lib.catalog.ok_paths(ids[keep])
        roots = lib.catalog.roots()
    if not keep:
        raise StyleSearchError("no indexed works to draw" + (f" below {under}" if under else ""))
    names = [os.fsdecode(paths[ids[i]]) for i in keep]
    groups = [_group(name, color_by, roots) for name in names]
    xy, used = layout(vectors[keep], method, seed)
    method_name = {"tsne": " (t-SNE)", "pca": " (PCA)", "none": ""}[used]
    title = f"Style map: {len(names)} work{'' if len(names) == 1 else 's'}{method_name}"
    if html_out:
        map_html(names, xy, groups, html_out, title)
        err.print(f"Wrote {html_out}", markup=False)
    if png:
        map_png(names, xy, groups, png, title)
        err.print(f"Wrote {png}", markup=False)


def _group(path: str, color_by: str, roots: list[bytes]) -> str:
    from .library.scan import owning_root

    root = owning_root(os.fsencode(path), roots)
    if color_by == "folder":  # the folder below its root: two "covers" folders of two artists stay apart
        folder, top = os.path.dirname(path), os.fsdecode(root) if root else None
        return os.path.basename(folder) if top is None or folder == top else os.path.relpath(folder, top)
    if color_by == "root":
        return os.fsdecode(root) if root else "other"
    return "all"


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .npz file to write.")
@click.option("--batch-size", default=32, show_default=True, help="Images per model call.")
@pass_state
def embed(state: _State, paths: tuple[str, ...], output: Path, batch_size: int) -> None:
    """Write style vectors of PATHS (files or folders) to an .npz file.

    The file holds `paths` (strings), `vectors` (float32, one row per path) and `model_id`:
    the way to analyse the embedding outside stylesearch. Unreadable files are reported and
    left out; the exit status is 1 only if nothing could be embedded.
    """
    import numpy as np

    from .library.scan import expand

    if batch_size < 1:
        raise StyleSearchError("--batch-size must be at least 1")
    files, unlisted = expand(paths)
    for folder, reason in unlisted:
        err.print(f"skipped {shown(folder)}: {reason}", markup=False)
    embedder = state.embedder(batch_size=batch_size)
    names, vectors = [], []
    for path, vector, error in embedder.stream(files):
        if error:
            err.print(f"failed: {shown(path)}: {error}", markup=False)
        else:
            names.append(os.fsdecode(path))
            vectors.append(vector)
    if not vectors:
        raise StyleSearchError("no file could be embedded")
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as fh:
        np.savez(fh, paths=np.array(names), vectors=np.stack(vectors).astype(np.float32), model_id=embedder.info.model_id)
    err.print(f"Wrote {len(vectors)} vectors ({embedder.dim}-d, model {embedder.info.model_id}) to {output}", markup=False)


@cli.command()
@click.option("--failed", is_flag=True, help="List the files that could not be indexed, with the reason.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def status(state: _State, failed: bool, as_json: bool) -> None:
    """Show the library: folder, model, file counts, watched roots, index size."""
    from .library.scan import watched_roots
    from .model.locate import resolve_model_path

    with state.library() as lib:
        model_path = resolve_model_path(state.settings.model)
        facts = lib.index_facts()
        report = {
            "library": str(lib.folder),
            "model": {"path": str(model_path), "library_model_id": lib.model_id,
                      "matches_library": lib.known_model_id(model_path) is not None or lib.model_id is None},
            "counts": lib.catalog.counts(),
            "roots": [{"path": os.fsdecode(r), "reachable": ok} for r, ok in watched_roots(lib.catalog)],
            "index": {"vectors": facts.get("live", 0), "bytes": facts.get("bytes", 0),
                      "fresh": facts.get("fresh", False)},
        }
        if failed:
            report["failed"] = [{"path": os.fsdecode(p), "error": e} for p, e in lib.catalog.failed()]
    if as_json:
        click.echo(json.dumps(report))
        return
    counts = report["counts"]
    out.print(f"[bold]Library[/] {report['library']}")
    out.print(f"[bold]Model[/]   {report['model']['library_model_id'] or '(none yet)'}  ({model_path})")
    if not report["model"]["matches_library"]:
        out.print("  [yellow]the selected model file differs from the one this library was indexed with[/]")
    out.print(f"[bold]Files[/]   {counts['ok']} ok, {counts['failed']} failed, {counts['offline']} offline")
    out.print(f"[bold]Index[/]   {report['index']['vectors']} vectors, {report['index']['bytes'] / 2**20:.1f} MiB"
              + ("" if report["index"]["fresh"] else " (stale: rebuilt on next use)"))
    for root in report["roots"]:
        out.print(f"[bold]Root[/]    {escape(shown(root['path']))}" + ("" if root["reachable"] else "  [yellow](offline)[/]"), markup=True)
    for item in report.get("failed", []):
        out.print(f"failed: {shown(item['path'])}: {item['error']}", markup=False)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print {\"forgotten\": N} as JSON.")
@pass_state
def forget(state: _State, paths: tuple[str, ...], as_json: bool) -> None:
    """Remove PATHS (files, or folders and everything below) from the library.

    Files on disk are not touched. A forgotten root stops being watched; files inside a
    folder that is still watched come back at its next scan.
    """
    answer = state.daemon("forget", {"paths": [os.path.abspath(p) for p in paths]})
    if answer is not None:
        forgotten = answer["forgotten"]
    else:
        with state.library() as lib:
            forgotten = lib.forget(paths)
    if as_json:
        click.echo(json.dumps({"forgotten": forgotten}))
    else:
        out.print(f"Forgot {forgotten} file(s).")


@cli.command()
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--settle", default=1.0, show_default=True, help="Seconds a file must stay unchanged before it is indexed.")
@pass_state
def watch(state: _State, roots: tuple[str, ...], settle: float) -> None:
    """Index ROOTS (and every folder indexed before), then keep them indexed as files come,
    change, move and go, until Ctrl-C. Also answers queries warm, like the daemon."""
    _serve(state, list(roots), settle, log_to_file=False)


def _serve(state: _State, roots: list[str], settle: float, log_to_file: bool) -> None:
    from .daemon.process import setup_logging
    from .daemon.service import Service

    setup_logging(to_file=log_to_file)
    with state.library(create=True) as lib:
        if not roots and not lib.catalog.roots():
            raise StyleSearchError("nothing to watch: give one or more folders (they are remembered)")
        Service(lib, state.embedder(), settle_s=settle).serve(roots)


@cli.group()
def daemon() -> None:
    """The background service: watches your folders and answers queries warm.

    \b
      stylesearch daemon start        # watches every folder indexed before
      stylesearch daemon status
      stylesearch daemon logs
      stylesearch daemon stop
    While it runs, `similar`, `morph`, `index` and `forget` go through it.
    """


@daemon.command("start")
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.pass_context
def daemon_start(ctx: click.Context, roots: tuple[str, ...]) -> None:
    """Start the daemon in the background (optionally adding ROOTS to watch)."""
    from .daemon.process import start

    state: _State = ctx.obj
    args = ["--library", str(state.settings.library), "--device", state.settings.device, "--precision", state.precision]
    if state.settings.model:
        args += ["--model", str(state.settings.model)]
    info = start(args, [os.path.abspath(r) for r in roots])
    out.print(f"Daemon started (pid {info['pid']}), watching {len(info['roots'])} folder(s).")


@daemon.command("run")
@click.argument("roots", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=str))
@click.option("--settle", default=1.0, show_default=True, help="Seconds a file must stay unchanged before it is indexed.")
@click.option("--log-file", is_flag=True, help="Log to the rotating log file instead of stderr.")
@pass_state
def daemon_run(state: _State, roots: tuple[str, ...], settle: float, log_file: bool) -> None:
    """Run the daemon in the foreground (what `start` launches; use it from systemd)."""
    _serve(state, list(roots), settle, log_to_file=log_file)


@daemon.command("stop")
def daemon_stop() -> None:
    """Stop the daemon; it saves the index first."""
    from .daemon.process import stop

    pid = stop()
    out.print("No daemon was running." if pid is None else f"Daemon (pid {pid}) stopped.")


@daemon.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def daemon_status(as_json: bool) -> None:
    """Show pid, uptime, library, roots, queue length, images/s and the last error."""
    from .daemon.process import running

    info = running()
    if as_json:
        click.echo(json.dumps(info or {"running": False}))
        return
    if info is None:
        raise StyleSearchError("no daemon is running (start it with `stylesearch daemon start`)")
    out.print(f"[bold]Daemon[/]  pid {info['pid']}, up {info['uptime_s']:.0f} s, library {escape(info['library'])}")
    out.print(f"[bold]Model[/]   {info['model_id']}")
    out.print(f"[bold]Queue[/]   {info['queue']} path(s) waiting; {info['indexed']} indexed since start"
              f" (last rate {info['images_per_s']} images/s)")
    for root in info["roots"]:
        out.print(f"[bold]Root[/]    {escape(root)}")
    if info["last_error"]:
        out.print(f"[bold]Last error[/] {escape(info['last_error'])}")


@daemon.command("logs")
@click.option("-n", "lines", default=50, show_default=True, help="How many lines.")
def daemon_logs(lines: int) -> None:
    """Print the end of the daemon's log."""
    from .daemon.process import log_file, tail

    shown = tail(lines)
    if not shown:
        raise StyleSearchError(f"no daemon log yet at {log_file()}")
    for line in shown:
        click.echo(line)


@cli.group()
def roots() -> None:
    """The folders the library watches (`daemon start` with no arguments watches them all)."""


@roots.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@pass_state
def roots_list(state: _State, as_json: bool) -> None:
    """List the watched folders."""
    from .library.scan import watched_roots

    with state.library() as lib:
        found = [{"path": os.fsdecode(r), "reachable": ok} for r, ok in watched_roots(lib.catalog)]
    if as_json:
        click.echo(json.dumps(found))
        return
    for root in found:
        out.print(escape(shown(root["path"])) + ("" if root["reachable"] else "  [yellow](offline)[/]"))


@roots.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=str))
@pass_state
def roots_add(state: _State, paths: tuple[str, ...]) -> None:
    """Watch these folders too (indexed by the daemon or the next `stylesearch index`)."""
    with state.library(create=True) as lib, lib.catalog.transaction():
        new = {os.fsencode(os.path.abspath(path)) for path in paths} - set(lib.catalog.roots())
        for path in sorted(new):
            lib.catalog.add_root(path)
    state.daemon("rescan", {})
    out.print(f"Watching {len(new)} more folder(s)." if new else "Already watching every folder given.")


@roots.command("remove")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.pass_context
def roots_remove(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Stop watching these folders and forget their files (nothing on disk is touched)."""
    from .library.scan import is_under, normalise

    with ctx.find_object(_State).library() as lib:
        watched = lib.catalog.roots()
    # a root, or a folder holding roots (forget drops every root below it); a typo forgets nothing
    if unknown := [p for p in paths if not any(is_under(root, normalise(p)) for root in watched)]:
        raise StyleSearchError(f"not a watched folder: {unknown[0]} (`stylesearch roots list` shows them)")
    ctx.invoke(forget, paths=paths, as_json=False)


@cli.group()
def plugins() -> None:
    """Add-ons that bring stylesearch into other applications.

    \b
      stylesearch plugins calibre --install            # into calibre (close calibre first)
      stylesearch plugins calibre --build-zip out.zip  # or just build the plugin file
      stylesearch plugins digikam --install            # Open With entries + Batch Queue script for digiKam
    """


@plugins.command("calibre")
@click.option("--build-zip", "zip_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plugin to this .zip file (install it later with `calibre-customize -a FILE`, or in "
                   "calibre: Preferences > Plugins > Load plugin from file).")
@click.option("--install", "install_it", is_flag=True,
              help="Install the plugin into calibre with calibre-customize and add its button to the toolbar and the "
                   "book list's context menu. Needs calibre installed; restart calibre afterwards.")
def plugins_calibre(zip_out: Path | None, install_it: bool) -> None:
    """The calibre plugin: find books drawn in a similar art style, morph between two books'
    styles, and index a calibre library's covers, from calibre's toolbar and context menu.

    \b
    Typical use:
      stylesearch plugins calibre --install
      then, in calibre: select a book, Style search > Index this library (once),
      then Style search > Find books with similar art style.
    The plugin asks the stylesearch daemon when it runs (`stylesearch daemon start`), else
    runs the `stylesearch` command (found on PATH, or set in calibre: Style search >
    Settings). More in plugins/calibre/README.md.
    """
    import tempfile

    from .integrations import calibre

    if not (zip_out or install_it):
        raise StyleSearchError("give --build-zip FILE and/or --install (see --help)")
    if zip_out:
        calibre.build_zip(zip_out)
        err.print(f"Wrote {zip_out}", markup=False)
    if install_it:
        with tempfile.TemporaryDirectory() as tmp:
            calibre.install(zip_out or calibre.build_zip(Path(tmp) / "stylesearch-calibre.zip"))
        out.print("Installed the stylesearch plugin into calibre; restart calibre to use it (toolbar: Style search).")


cli.add_command(digikam)
plugins.add_command(plugins_digikam)


def main() -> None:
    cli(prog_name="stylesearch")


def _config_options(config_cls):
    """One --option per field of a training config dataclass (default: the paper's value),
    plus --config FILE.toml for the same keys; the command line wins over the file."""
    import dataclasses

    def decorate(fn):
        for f in reversed([f for f in dataclasses.fields(config_cls) if f.type in ("int", "float", "str")]):
            kind = {"int": int, "float": float, "str": str}[f.type]
            fn = click.option(f"--{f.name.replace('_', '-')}", f.name, type=kind, default=None,
                              metavar=f.metadata.get("metavar"),
                              help=f"{f.metadata.get('help', '')} [default: {f.default if f.default != '' else 'none'}]")(fn)
        return click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                            help="TOML file with any of these options (underscored names).")(fn)

    return decorate


def _make_config(config_cls, config_file: Path | None, options: dict):
    import dataclasses
    import tomllib

    names = {f.name for f in dataclasses.fields(config_cls)}
    values = tomllib.loads(config_file.read_text()) if config_file else {}
    unknown = set(values) - names
    if unknown:
        raise StyleSearchError(f"{config_file}: unknown keys {', '.join(sorted(unknown))}")
    values |= {k: v for k, v in options.items() if k in names and v is not None}
    return config_cls(**values)


@cli.group()
def train() -> None:
    """Retrain the style model on your own images: the paper's two stages, then the fusion
    with style statistics that the bundled model uses (models/MODEL_CARD.md).

    \b
      stylesearch train pretrain DATA/ --out simclr.pt
      stylesearch train finetune DATA/ --init simclr.pt --loss triplet+vae --out style.pt
      stylesearch train fuse DATA/ --init style.pt --out fused.pt
      stylesearch --model fused.pt eval TEST/ --baseline
      stylesearch --model fused.pt index ~/Comics
    """


_TRAIN_RUN_OPTIONS = [
    click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Checkpoint to write."),
    click.option("--resume", is_flag=True, help="Continue from OUT.state (saved every --checkpoint-minutes and each epoch)."),
    click.option("--checkpoint-minutes", default=10.0, show_default=True, help="How often to save resumable state."),
    click.option("--max-steps", type=int, help="Stop after this many optimiser steps (smoke runs)."),
    click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON."),
]


_train_run_options = _stack(_TRAIN_RUN_OPTIONS)


def _run_options(state: _State, resume: bool, checkpoint_minutes: float, max_steps: int | None, as_json: bool):
    from .train.loop import RunOptions

    return RunOptions(device=state.settings.device, resume=resume, checkpoint_minutes=checkpoint_minutes,
                      progress=not as_json, max_steps=max_steps)


def _finish_training(result: dict, path: Path, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, default=str))
        return
    for record in result["history"]:
        out_line = "  ".join(f"{k} {v}" for k, v in record.items())
        err.print(out_line, markup=False)
    if result.get("skipped_images"):
        err.print(f"skipped {len(result['skipped_images'])} unreadable image(s)")
    if result.get("short_artists"):
        err.print(f"{len(result['short_artists'])} artist(s) had fewer than K images (sampled with replacement)")
    out.print(f"Wrote {path}", markup=False)


@train.command()
@click.argument("data", nargs=-1, required=True, type=click.Path(path_type=str))
@_config_options(PretrainConfig)
@_train_run_options
@pass_state
def pretrain(state: _State, data: tuple[str, ...], config_file, out: Path, resume: bool, checkpoint_minutes: float,
             max_steps: int | None, as_json: bool, **options) -> None:
    """SimCLR pre-training on unlabelled images under DATA (folders or files)."""
    from .library.scan import expand
    from .train.pretrain import pretrain as run

    config = _make_config(PretrainConfig, config_file, options)
    paths, _ = expand(data)
    if len(paths) < 2:
        raise StyleSearchError("pre-training needs at least two images")
    result = run([os.fsdecode(p) for p in paths], out, config,
                 run=_run_options(state, resume, checkpoint_minutes, max_steps, as_json))
    _finish_training(result, out, as_json)


@train.command()
@click.argument("data", type=click.Path(path_type=str))
@click.option("--init", type=click.Path(exists=True, dir_okay=False), help="Start from this checkpoint: its trunk (e.g. SimCLR), and its embedding layers when they have this run's shape (to continue a trained encoder, e.g. the bundled model's CNN).")
@_config_options(FinetuneConfig)
@_train_run_options
@pass_state
def finetune(state: _State, data: str, init: str | None, config_file, out: Path, resume: bool, checkpoint_minutes: float,
             max_steps: int | None, as_json: bool, **options) -> None:
    """Fine-tune on artist-labelled DATA: a folder of artist folders, a path,artist CSV, or
    a calibre library (covers labelled by first author). --loss picks the paper's Table 2
    variant (arc, triplet, vae, gmvae, arc+vae, triplet+vae) or supervised contrastive
    (supcon, supcon+vae). The bundled model's encoder was trained with --loss triplet+vae
    --balance source, then fused with `train fuse` (models/MODEL_CARD.md has the recipe)."""
    from .train.data import load_examples
    from .train.finetune import finetune as run

    config = _make_config(FinetuneConfig, config_file, options)
    config.check()
    result = run(load_examples(data), out, config, init=init,
                 run=_run_options(state, resume, checkpoint_minutes, max_steps, as_json))
    _finish_training(result, out, as_json)


@train.command("fuse")
@click.argument("data", type=click.Path(path_type=str))
@click.option("--init", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The trained encoder whose mu is fused with the style statistics.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Checkpoint to write.")
@click.option("--dim", default=256, show_default=True,
              help="Most discriminant directions of the statistics kept (at most artists - 1); also the "
                   "size of the learned head's output.")
@click.option("--cnn-weight", default=0.75, show_default=True,
              help="Weight of the encoder's own embedding (mu) against the statistics: 1 = equal shares of "
                   "the distance, 0 = no mu part (the head still reads mu) (with --no-normalise: mu's share "
                   "of the variance is this weight squared).")
@click.option("--normalise/--no-normalise", default=True, show_default=True,
              help="Scale each part (the statistics' directions; the encoder's mu) to unit length before "
                   "weighting, so works are compared by how they are drawn, not by how much ink or colour they hold.")
@click.option("--head-epochs", default=15, show_default=True,
              help="Epochs (passes over DATA, at least 1,000 batches of 256) of the learned head, a small "
                   "network on the same features that adds a third part; 0 = the linear map only. "
                   "Normalised parts only.")
@click.option("--head-weight", default=1.25, show_default=True,
              help="Weight of the learned head's part (the statistics' directions weigh 1).")
@click.option("--stage-statistics/--no-stage-statistics", default=False, show_default=True,
              help="Also fit on the encoder's channel mean and standard deviation of its input and of each "
                   "stage (1,926 values: texture at four scales as the encoder sees it); needs an encoder "
                   "with average pooling. Off by default: with the bundled model's encoder it scored worse "
                   "on styles the encoder never saw (models/MODEL_CARD.md).")
@click.option("--synthetic-weight", default=1.0, show_default=True,
              help="Weight (0 to 1) of the synthetic artists' images (labels under synthetic/, as "
                   "models/recipe/synthetic_artists.py makes them) in the discriminant analysis, against 1 "
                   "for every other image; no effect without them.")
@click.option("--jpeg-copies", default="", show_default=True, metavar="QUALITIES",
              help="Also fit on each image saved as a JPEG of these qualities (comma-separated, 1-95; e.g. 90,75), "
                   "as more works of its artist, so JPEG compression is variation the map learns to ignore; "
                   "each quality is one more pass over DATA.")
@click.option("--noise-copies", default="", show_default=True, metavar="LEVELS",
              help="Also fit on each image with half its pixels' channel values moved by up to this many "
                   "levels (comma-separated, 1-32; e.g. 2), as more works of its artist, so a scan's or a "
                   "re-save's noise is variation the map learns to ignore; each level is one more pass over DATA.")
@click.option("--shrinkage", default="auto", show_default=True,
              help="Covariance shrinkage between 0 and 1, or auto (Ledoit-Wolf).")
@click.option("--name", default="stylesearch-style", show_default=True, help="Model name stored in the checkpoint.")
@click.option("--version", "model_version", default="1", show_default=True, help="Model version stored in the checkpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as JSON.")
@pass_state
def fuse(state: _State, data: str, init: str, out: Path, dim: int, cnn_weight: float, normalise: bool,
         head_epochs: int, head_weight: float, stage_statistics: bool, synthetic_weight: float, jpeg_copies: str,
         noise_copies: str, shrinkage: str, name: str, model_version: str, as_json: bool) -> None:
    """Fuse a trained encoder with hand-made style statistics (palette, strokes, texture).

    The embedding becomes [the statistics' most discriminant directions (with
    --stage-statistics, the encoder's too), the encoder's own embedding (mu), a learned
    head], each part scaled to unit length (unless --no-normalise,
    which also leaves the head out) and weighted by --cnn-weight and --head-weight; the
    directions are found by linear discriminant analysis on artist-labelled DATA (same forms
    as `train finetune`), the head is trained on the same images. Minutes on a CPU.

    \b
      stylesearch train fuse artists/ --init style.pt --out fused.pt
      stylesearch --model fused.pt eval held-out-artists/ --baseline
    """
    from .train.data import load_examples
    from .train.fusion import fuse as run

    if shrinkage != "auto":
        try:
            value = float(shrinkage)
        except ValueError:
            value = -1.0
        if not 0 <= value <= 1:
            raise StyleSearchError(f"--shrinkage must be auto or a number from 0 to 1 (got {shrinkage!r})")
        shrinkage = value
    if dim < 1:
        raise StyleSearchError(f"--dim must be at least 1 (got {dim})")
    for option, value in (("--cnn-weight", cnn_weight), ("--head-weight", head_weight), ("--head-epochs", head_epochs)):
        if not 0 <= value < math.inf:
            raise StyleSearchError(f"{option} must be 0 or more (got {value})")
    if not 0 < synthetic_weight <= 1:
        raise StyleSearchError(f"--synthetic-weight must be above 0 and at most 1 (got {synthetic_weight})")
    qualities = _numbers(jpeg_copies, 1, 95, "--jpeg-copies takes JPEG qualities")
    levels = _numbers(noise_copies, 1, 32, "--noise-copies takes levels")
    if not out.parent.is_dir():
        raise StyleSearchError(f"--out: folder not found: {out.parent}")
    result = run(load_examples(data), init, out, dim=dim, cnn_weight=cnn_weight, shrinkage=shrinkage, normalise=normalise,
                 head_epochs=head_epochs, head_weight=head_weight, stage_statistics=stage_statistics,
                 synthetic_weight=synthetic_weight, jpeg_copies=qualities, noise_copies=levels,
                 device=state.settings.device, name=name, version=model_version)
    _finish_training(result, out, as_json)


def _numbers(text: str, low: int, high: int, what: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers from `low` to `high` (empty: none), or a one-line error."""
    try:
        numbers = tuple(int(n) for n in text.split(",") if n.strip())
    except ValueError:
        numbers = None
    if numbers is None or not all(low <= n <= high for n in numbers):
        raise StyleSearchError(f"{what} from {low} to {high}, comma-separated (got {text!r})")
    return numbers


@cli.command("eval")
@click.argument("data", type=click.Path(path_type=str))
@click.option("--baseline", is_flag=True, help="Also score a colour histogram and a raw thumbnail on the same images.")
@click.option("--tsne", type=click.Path(dir_okay=False, path_type=Path), help="Write a t-SNE map coloured by artist (PNG).")
@click.option("--seed", default=0, show_default=True, help="k-means / t-SNE seed.")
@click.option("--kmeans-runs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Average ACC / ARI / NMI over this many k-means runs (seeds SEED, SEED+1, ...) and show their spread.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: scores per method.")
@pass_state
def evaluate(state: _State, data: str, baseline: bool, tsne: Path | None, seed: int, kmeans_runs: int,
             as_json: bool) -> None:
    """Score the model on artist-labelled DATA (same forms as `train finetune`).

    k-means with k = number of artists, then ACC (Hungarian matching), ARI and NMI, as in
    the paper; plus retrieval P@10 and mAP@R. All in percent. The clustering scores move with
    k-means' seed (a point or more on a few dozen styles): --kmeans-runs 5 gives their mean
    and standard deviation.
    """
    import numpy as np

    from . import evaluate as ev
    from .imaging import load_image
    from .train.data import load_examples

    examples = load_examples(data)
    embedder = state.embedder()
    vectors, kept, failed = embedder.embed_all(examples, lambda e: load_image(e.path, embedder.size))
    for example, error in failed:
        err.print(f"skipped {example.path}: {error}", markup=False)
    labels = [e.artist for e in kept]
    if len(set(labels)) < 2:
        raise StyleSearchError("evaluation needs images of at least two artists")
    if len(set(labels)) == len(labels):  # retrieval needs a second work of the query's artist to find
        raise StyleSearchError("evaluation needs at least one artist with two or more images")
    results = {embedder.info.model_id: ev.score(vectors, labels, seed=seed, runs=kmeans_runs)}
    if baseline:
        images = [load_image(e.path, 64) for e in kept]
        for name, feature in ev.BASELINES.items():
            results[name] = ev.score(np.stack([feature(img) for img in images]), labels, seed=seed, runs=kmeans_runs)
    if tsne:
        ev.tsne_plot(vectors, labels, tsne, seed=seed)
    if as_json:
        click.echo(json.dumps(results))
        return
    columns = ("ACC", "ARI", "NMI", "P@10", "mAP@R")
    # what every row shares goes in the caption (the model's id is long), and numbers never
    # wrap: on a narrow terminal the method names fold instead of a score being cut
    caption = f"model = {embedder.info.model_id}; {len(kept)} images of {len(set(labels))} artists"
    table = Table("method", *columns, box=None, caption=caption, caption_justify="left")
    for column in table.columns[1:]:
        column.no_wrap = True
    for method, s in results.items():
        table.add_row("model" if method == embedder.info.model_id else method,
                      *(f"{s[k]}±{s[f'{k} sd']}" if f"{k} sd" in s else str(s[k]) for k in columns))
    out.print(table)
