"""The ``leaktrace`` command: parse, call the workflow, print. Exit codes live here only.

Exit status: 0 success (for ``trace``: a confident match), 1 ``trace`` found no confident
match (or the file is a registered original), 2 an error (message on stderr, never a
traceback), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .bundle import export_case, p_words, verify_bundle
from .cases import CaseView, case_dict, case_view, case_views
from .errors import LeaktraceError, NotFoundError
from .links import DEFAULT_EXPIRY, issue, parse_duration
from .registry import SETTINGS, Workspace, default_home
from .report import html_report, json_report
from .scan import STATUSES, Scanned, scan
from .verdicts import who
from .workflow import (
    MAX_STRENGTH,
    MIN_STRENGTH,
    BatchSummary,
    Stopped,
    make_copies,
    trace_file,
)

__all__ = ["app", "main"]


class _Group(TyperGroup):
    """Turns every LeaktraceError into a one-line message and exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except LeaktraceError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                err.print(f"error: {line}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    help="Invisible per-recipient watermarks; name the source of a leak.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
recipients_app = typer.Typer(help="Manage the people who receive copies.", no_args_is_help=True)
app.add_typer(recipients_app, name="recipients")
token_app = typer.Typer(help="Manage the HTTP service's API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
media_app = typer.Typer(help="The registered originals.", no_args_is_help=True)
app.add_typer(media_app, name="media")
copies_app = typer.Typer(help="The copies sent: who got which, when.", no_args_is_help=True)
app.add_typer(copies_app, name="copies")
traces_app = typer.Typer(help="The traces run and their verdicts.", no_args_is_help=True)
app.add_typer(traces_app, name="traces")
cases_app = typer.Typer(
    help="Cases: the scanned leaks that name the same leaker, and their evidence bundles.",
    no_args_is_help=True,
)
app.add_typer(cases_app, name="cases")
settings_app = typer.Typer(
    help="Your details, for the takedown notices of evidence bundles.", no_args_is_help=True
)
app.add_typer(settings_app, name="settings")
links_app = typer.Typer(
    help="Signed, expiring download links to recipients' copies (served by `leaktrace serve`).",
    no_args_is_help=True,
)
app.add_typer(links_app, name="links")

# No markup: file names and handles are printed as they are, brackets included.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"error: {message}")
    raise typer.Exit(code)


def _home(ctx: typer.Context) -> Path:
    home = (ctx.find_root().obj or {}).get("home")
    return Path(home) if home else default_home()


def _open(ctx: typer.Context) -> Workspace:
    return Workspace.open(_home(ctx))


def _when(moment: datetime) -> datetime:
    """A registry time with its zone (SQLite hands them back without it; they are UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _listing(
    rows: list[dict[str, Any]],
    columns: Mapping[str, Callable[[dict[str, Any]], str]],
    *,
    as_json: bool,
    empty: str,
) -> None:
    """Print registry rows: a table with these columns, or the rows as JSON."""
    if as_json:
        out.print_json(json.dumps(rows, default=lambda t: _when(t).isoformat()))
        return
    table = Table(box=None)
    for name in columns:
        table.add_column(name, no_wrap=name in _WHEN)
    for row in rows:
        table.add_row(*(cell(row) for cell in columns.values()))
    out.print(table if rows else empty)


_JSON = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_WHEN = {"registered", "made", "time", "p"}  # columns never wrapped


def _version(value: bool) -> None:
    if value:
        out.print(f"leaktrace {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Workspace folder (default: $LEAKTRACE_HOME or ./leaktrace)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    ctx.obj = {"home": home}


@app.command()
def init(ctx: typer.Context) -> None:
    """Create a workspace: the registry database and a new secret key (mode 0600)."""
    ws = Workspace.create(_home(ctx))
    out.print(f"workspace created in {ws.home}")
    out.print(
        f"secret key: {ws.home / Workspace.KEY_NAME} — back it up and keep it private; "
        "without it no copy can be traced"
    )


@recipients_app.command("add")
def recipients_add(
    ctx: typer.Context,
    handle: str,
    name: Annotated[str, typer.Option(help="Full name.")] = "",
    email: Annotated[str, typer.Option(help="Contact email.")] = "",
) -> None:
    """Register one recipient under a short HANDLE (used in copy file names)."""
    _open(ctx).add_recipient(handle, name=name, email=email)
    out.print(f"added {handle}")


@recipients_app.command("import")
def recipients_import(
    ctx: typer.Context,
    csv_file: Path,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="Skip the rows already registered.")
    ] = False,
) -> None:
    """Import recipients from a CSV with a header row (all new rows, or none).

    Columns handle,name,email; or an export with Name and Email columns (a Patreon members
    CSV), each handle then made from the name (Chloé Martin: chloe-martin; -2, -3... when
    taken), else from the email. Other columns are read past.
    """
    done = _open(ctx).import_recipients(csv_file, skip_existing=skip_existing)
    out.print(
        f"imported {len(done.added)} recipients"
        + (f", skipped {len(done.skipped)} already registered" if done.skipped else "")
    )


@recipients_app.command("remove")
def recipients_remove(ctx: typer.Context, handle: str) -> None:
    """Remove a recipient who has received no copies (records of copies are kept for good)."""
    _open(ctx).remove_recipient(handle)
    out.print(f"removed {handle}")


@recipients_app.command("list")
def recipients_list(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List every recipient."""
    people = [
        {"handle": r.handle, "name": r.name, "email": r.email} for r in _open(ctx).recipients()
    ]
    columns = {k: itemgetter(k) for k in ("handle", "name", "email")}
    _listing(people, columns, as_json=as_json, empty="no recipients yet")


@media_app.command("list")
def media_list(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List the registered originals, oldest first, with how many recipients have a copy."""
    ws = _open(ctx)
    sent: dict[int, set[str]] = {}
    for c in ws.copies():
        sent.setdefault(c.media_id, set()).add(c.handle)
    rows = [
        {
            "id": m.id,
            "name": m.name,
            "kind": m.kind,
            "width": m.width,
            "height": m.height,
            "size": m.size,
            "sha256": m.sha256,
            "recipients": len(sent.get(m.id, ())),
            "registered": m.created,
        }
        for m in ws.media()
    ]
    columns: dict[str, Callable[[dict[str, Any]], str]] = {
        "id": lambda r: str(r["id"]),
        "registered": lambda r: f"{r['registered']:%Y-%m-%d %H:%M}",
        "name": itemgetter("name"),
        "kind": itemgetter("kind"),
        "size": lambda r: f"{r['width']}×{r['height']}",
        "recipients": lambda r: str(r["recipients"]),
        "sha256": lambda r: r["sha256"][:12],
    }
    _listing(rows, columns, as_json=as_json, empty="no originals registered yet")


@copies_app.command("list")
def copies_list(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="Only those sent to this handle.")] = None,
    as_json: _JSON = False,
) -> None:
    """List every copy made, oldest first: when, to whom, of which original, where."""
    rows = [
        {
            "made": c.created,
            "handle": c.handle,
            "media_id": c.media_id,
            "media": c.media_name,
            "path": c.path,
            "sha256": c.sha256,
        }
        for c in _open(ctx).copies(to=to)
    ]
    columns: dict[str, Callable[[dict[str, Any]], str]] = {
        "made": lambda r: f"{r['made']:%Y-%m-%d %H:%M}",
        "to": itemgetter("handle"),
        "original": itemgetter("media"),
        "file": itemgetter("path"),
        "sha256": lambda r: r["sha256"][:12],
    }
    _listing(rows, columns, as_json=as_json, empty="no copies made yet")


@traces_app.command("list")
def traces_list(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List every trace, oldest first: the leak, the verdict, who it names."""
    rows = [
        {
            "id": t.id,
            "time": t.created,
            "leak": t.name,
            "sha256": t.sha256,
            "verdict": t.verdict,
            "recipient": t.recipient,
            "person": t.result.get("person"),
            "p_value": t.p_value,
            "media_id": t.media_id,
        }
        for t in _open(ctx).traces()
    ]
    columns: dict[str, Callable[[dict[str, Any]], str]] = {
        "id": lambda r: str(r["id"]),
        "time": lambda r: f"{r['time']:%Y-%m-%d %H:%M}",
        "leak": itemgetter("leak"),
        "verdict": lambda r: r["verdict"].replace("_", " "),
        "names": lambda r: who(r["person"]) if r["person"] else r["recipient"] or "nobody",
        "p": lambda r: "" if r["p_value"] is None else f"{r['p_value']:.2g}",
    }
    _listing(rows, columns, as_json=as_json, empty="no traces yet")


@app.command()
def embed(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Original photos.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the copies.")],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="A recipient's handle (repeatable).")
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Every registered recipient.")] = False,
    workers: Annotated[
        int | None, typer.Option(help="Processes to use (default: all cores).", min=1)
    ] = None,
    strength: Annotated[
        float,
        typer.Option(help=f"Mark strength, {MIN_STRENGTH}–{MAX_STRENGTH} (1 ≈ 48 dB PSNR)."),
    ] = 1.0,
    cluster: Annotated[
        str | None,
        typer.Option(
            envvar="LEAKTRACE_CLUSTER",
            help="Make the copies on this Dask scheduler's workers (tcp://host:8786); the "
            "workspace, files and output folder must be on storage every worker mounts at "
            "the same path.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Make one marked copy of each file per recipient: OUTPUT/<handle>/<file name>.

    Photos and videos alike (MP4, MOV, MKV, WebM in; MP4 copies). A video of a minute or more
    is marked once per variant, then each copy is a remux (seconds); a shorter clip is
    encoded once per recipient. Every file is checked before any work; copies already made
    are skipped, and no file is ever overwritten (a name that is taken gets ~<hash of the
    original> before its suffix).
    """
    if everyone == bool(to):
        _fail("say who receives copies: --all, or --to HANDLE (repeatable)")
    ws = _open(ctx)
    summary = BatchSummary()
    progress, task = _progress("marking", hidden=as_json)

    def started(total: int) -> None:  # every file checked: the bar starts
        for line in summary.warnings:
            err.print(f"warning: {line}")
        progress.update(task, total=total)
        if not progress.live.is_started:
            progress.start()

    encoding: dict[str, Any] = {}

    def encoded(name: str, done: int, total: int) -> None:  # a video's frames, marked once
        if name not in encoding:
            encoding[name] = progress.add_task(f"marking {name} (frames)", total=total)
            if not progress.live.is_started:
                progress.start()
        progress.update(encoding[name], completed=done, total=total)

    with _interruptible(
        progress,
        lambda: (
            f"{summary.made} new copies made and recorded; run the same command again to finish"
        ),
    ) as stop:
        jobs = make_copies(
            ws,
            files,
            None if everyone else to,
            output,
            workers=workers,
            strength=strength,
            on_total=started,
            summary=summary,
            stop=stop,
            on_variants=encoded,
            cluster=cluster or None,
        )
        for _ in jobs:
            progress.update(task, completed=summary.made + summary.skipped)
    if as_json:
        record = {
            "made": summary.made,
            "skipped": summary.skipped,
            "output": str(output),
            "warnings": summary.warnings,
        }
        sys.stdout.write(json.dumps(record) + "\n")
        return
    out.print(f"{summary.made} copies written, {summary.skipped} already there, in {output}")


@app.command()
def trace(
    ctx: typer.Context,
    leak: Annotated[Path, typer.Argument(help="The leaked file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write an evidence report (.html, or .json).")
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Largest false-accusation probability that is a match.")
    ] = 1e-9,
) -> None:
    """Name the recipient a leaked copy came from, with its false-accusation probability."""
    if not 0 < threshold < 1:
        _fail("--threshold must be between 0 and 1")
    outcome = trace_file(_open(ctx), leak, threshold=threshold)
    if report is not None:
        text = (
            json_report(outcome.result)
            if report.suffix.lower() == ".json"
            else html_report(outcome.result, outcome.leak, outcome.original, outcome.geometry)
        )
        try:
            report.write_text(text, encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write the report {report}: {exc}")
    if as_json:
        sys.stdout.write(json_report(outcome.result) + "\n")
    else:
        out.print(outcome.result["message"])
        if report is not None:
            out.print(f"evidence report: {report}")
    raise typer.Exit(0 if outcome.matched else 1)


def _progress(what: str, *, hidden: bool) -> tuple[Progress, TaskID]:
    """A batch's progress bar on stderr (started when the batch knows its size)."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=hidden,
    )
    return progress, progress.add_task(what, total=None)


@contextmanager
def _interruptible(progress: Progress, interrupted: Callable[[], str]) -> Iterator[threading.Event]:
    """Runs a batch that Ctrl-C or SIGTERM asks to stop at its next safe point (the work in
    hand is finished and recorded); a second signal stops it at once (what is left is settled
    on next open). Yields the stop event; once stopped, prints "interrupted: "
    + ``interrupted()`` and exits 130 (Ctrl-C) or 143 (SIGTERM)."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            yield stop
        finally:
            if progress.live.is_started:
                progress.stop()
    except (KeyboardInterrupt, Stopped):
        err.print(f"interrupted: {interrupted()}")
        raise typer.Exit(143 if signal.SIGTERM in received else 130) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _people(view: CaseView) -> str:
    return "; ".join(who(view.people.get(h) or {"handle": h}) for h in view.handles)


@app.command("scan")
def scan_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="The folder of suspected leaks.")],
    workers: Annotated[
        int | None, typer.Option(help="Processes to use (default: all cores).", min=1)
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Largest false-accusation probability that is a match.")
    ] = 1e-9,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Trace every picture and video in FOLDER (and its sub-folders), then group the leaks
    into cases by leaker.

    Each file is recorded with its verdict as it is traced: stopped midway (Ctrl-C, a crash)
    and run again, the scan traces only what it had not; a file whose bytes were judged
    before is not traced again. Files that are not one of your media, and files that are not
    pictures or videos, are listed apart with the reason.
    """
    if not 0 < threshold < 1:
        _fail("--threshold must be between 0 and 1")
    ws = _open(ctx)
    progress, task = _progress("tracing", hidden=as_json)

    def started(total: int) -> None:
        progress.update(task, total=total)
        if not progress.live.is_started:
            progress.start()

    seen: list[Scanned] = []
    with _interruptible(
        progress,
        lambda: (
            f"{len(seen)} files judged and recorded; run the same command again to finish "
            "(they are not traced twice)"
        ),
    ) as stop:
        for item in scan(
            ws, folder, workers=workers, threshold=threshold, on_total=started, stop=stop
        ):
            seen.append(item)
            progress.update(task, completed=len(seen))
    views = case_views(ws)
    by_file = {f.path: v.id for v in views for f in v.files}
    if as_json:
        record = {
            "files": [
                {
                    "path": i.path,
                    "sha256": i.sha256,
                    "status": i.status,
                    "reason": i.reason,
                    "traced_before": i.again,
                    "case": by_file.get(i.path),
                }
                for i in seen
            ],
            "cases": [case_dict(v, files=False) for v in views],
        }
        sys.stdout.write(json.dumps(record, default=lambda t: _when(t).isoformat()) + "\n")
        return
    again = sum(i.again for i in seen)
    out.print(
        f"scanned {len(seen)} files in {folder}: {len(seen) - again} traced now, {again} "
        "judged before (not traced again)"
    )
    mine = {by_file[i.path] for i in seen if i.path in by_file}
    shown = [v for v in views if v.id in mine]
    if shown:
        out.print(f"\ncases ({len(shown)}; `leaktrace cases show ID` for one):")
        for v in shown:
            out.print(f"  {_case_line(v)}")
    else:
        out.print("\nno file names anyone: no case")
    for status, title in STATUSES.items():
        if status == "match":
            continue
        rows = [i for i in seen if i.status == status]
        if rows:
            out.print(f"\n{title} ({len(rows)}):")
            for i in rows:
                out.print(f"  {i.path}: {_reason(i)}")


def _reason(item: Scanned) -> str:
    """A file's reason without its own path repeated in front."""
    return item.reason.removeprefix(f"{item.path}: ")


def _case_line(v: CaseView) -> str:
    names = ", ".join(m.media.name for m in v.media)
    files = len(v.files)
    return (
        f"#{v.id}  {_people(v)}  —  {len(v.media)} media ({names}), {files} "
        f"file{'s' * (files != 1)} ({v.leaks} leak{'s' * (v.leaks != 1)}), combined p="
        f"{p_words(v.log10_p)}, strongest single p={p_words(v.strongest)}"
    )


@cases_app.command("list")
def cases_list(ctx: typer.Context, as_json: _JSON = False) -> None:
    """List the cases, one line each: leaker(s), media, files, combined and strongest p."""
    views = case_views(_open(ctx))
    if as_json:
        rows = [case_dict(v, files=False) for v in views]
        sys.stdout.write(json.dumps(rows, default=lambda t: _when(t).isoformat()) + "\n")
        return
    for v in views:
        out.print(_case_line(v))
    if not views:
        out.print("no cases yet (scan a folder of suspected leaks with `leaktrace scan`)")


@cases_app.command("show")
def cases_show(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(help="The case's number (see `cases list`).")],
    as_json: _JSON = False,
) -> None:
    """Show one case: who, the combined probability, every file, and the copies sent."""
    ws = _open(ctx)
    v = case_view(ws, case_id)
    if as_json:
        sys.stdout.write(json.dumps(case_dict(v), default=lambda t: _when(t).isoformat()) + "\n")
        return
    out.print(f"case {v.id}: leaked by {_people(v)}")
    out.print(
        f"combined false-accusation probability {p_words(v.log10_p)} over {len(v.media)} "
        f"media item{'s' * (len(v.media) != 1)} and {len(v.files)} files ({v.leaks} distinct "
        f"leaks); strongest single file {p_words(v.strongest)}; corrected for the "
        f"{v.eligible} recipients who received every item"
    )
    if len(v.handles) > 1:
        for h, lp in v.per_person.items():
            out.print(f"  {h}: combined p={p_words(lp)}")
    copies = ws.copy_proof([m.media.id for m in v.media], v.handles)
    for m in v.media:
        out.print(
            f"\n{m.media.name} (registered {_when(m.media.created):%Y-%m-%d %H:%M} UTC, "
            f"sha256 {m.media.sha256[:12]}): {len(m.files)} files, {m.leaks} leak(s)"
        )
        for c in copies:
            if c["media_id"] == m.media.id:
                out.print(f"  sent to {c['handle']} {c['sent']}, copy sha256 {c['sha256'][:12]}")
        for f in m.files:
            tag = f"leak {f.leak}" + (", re-share" if f.reshare else "")
            out.print(f"  {f.place}  p={p_words(f.log10_p)}  ({tag}; trace {f.trace_id})")


@cases_app.command("export")
def cases_export(
    ctx: typer.Context,
    case_id: Annotated[int, typer.Argument(help="The case's number (see `cases list`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle to write (.zip).")],
    found_at: Annotated[
        str | None,
        typer.Option("--found-at", help="Where the files were found (a URL), for the notice."),
    ] = None,
) -> None:
    """Write a case's evidence bundle: an index page, each file's evidence report, every
    file's SHA-256, the registry's record of what was sent to whom and when, a draft takedown
    notice to review (not legal advice). The key is never in it."""
    path = export_case(_open(ctx), case_id, output, found_at=found_at)
    out.print(f"case {case_id}: evidence bundle written to {path}")
    out.print(f"check it later with: leaktrace cases verify {path}")


@cases_app.command("verify")
def cases_verify(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `cases export`.")],
) -> None:
    """Check a bundle against this workspace: every file's hash, the manifest the workspace
    recorded at export, and the registry's records (exit 1 if anything changed)."""
    found = verify_bundle(_open(ctx), bundle)
    if found.ok:
        out.print(
            f"{bundle}: intact — case {found.case}, {found.files} files match their hashes, "
            f"the manifest is the one exported, {found.records} registry records unchanged"
        )
        return
    for line in found.problems:
        err.print(f"{bundle}: {line}")
    err.print(f"{bundle}: does NOT verify ({len(found.problems)} problem(s))")
    raise typer.Exit(1)


@settings_app.command("set")
def settings_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SETTINGS)}.")],
    value: Annotated[str, typer.Argument(help="Its value (empty: clear it).")],
) -> None:
    """Set one of your details (used in takedown notices)."""
    _open(ctx).set_setting(name, value)
    out.print(f"{name} = {value}" if value.strip() else f"{name} cleared")


@settings_app.command("list")
def settings_list(ctx: typer.Context, as_json: _JSON = False) -> None:
    """Show your details as takedown notices will use them."""
    current = _open(ctx).settings()
    if as_json:
        sys.stdout.write(json.dumps(current) + "\n")
        return
    for name, value in current.items():
        out.print(f"{name} = {value}" if value else f"{name}: not set ({SETTINGS[name]})")


def _media_id(ws: Workspace, which: str) -> int:
    """A registered original by its id (``media list``) or its name, if only one has it."""
    if which.isdigit():
        return ws.media_by_id(int(which)).id
    named = [m.id for m in ws.media() if m.name == which]
    if len(named) != 1:
        raise NotFoundError(
            f"no original named {which!r}"
            if not named
            else f"several originals are named {which!r}; give its id (see `leaktrace media list`)"
        )
    return named[0]


def _duration(text: str) -> str:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return text


@links_app.command("make")
def links_make(
    ctx: typer.Context,
    media: Annotated[str, typer.Argument(help="The original: its id or its name.")],
    to: Annotated[
        list[str] | None, typer.Option("--to", help="A recipient's handle (repeat for more).")
    ] = None,
    everyone: Annotated[bool, typer.Option("--all", help="Every registered recipient.")] = False,
    expires: Annotated[
        str,
        typer.Option(
            help="How long the links work: 90s, 30m, 12h, 7d, 2w (at most 366 days).",
            callback=_duration,
        ),
    ] = f"{DEFAULT_EXPIRY.days}d",
    base_url: Annotated[
        str,
        typer.Option(
            help="Where the service is reached from outside (the links start with it).",
            envvar="LEAKTRACE_PUBLIC_URL",
        ),
    ] = "http://127.0.0.1:8000",
    as_json: _JSON = False,
) -> None:
    """Print a download link to each recipient's copy of an original, one line per recipient
    (handle, tab, link): the link downloads the copy from `leaktrace serve` without an API
    token until it expires, making and recording the copy when it is first opened."""
    if everyone == bool(to):
        _fail("name the recipients with --to HANDLE, or give --all (not both)")
    ws = _open(ctx)
    made = issue(
        ws, _media_id(ws, media), None if everyone else to, valid_for=parse_duration(expires)
    )
    if not made:
        _fail("no recipients registered: add some with `leaktrace recipients add`")
    base = base_url.rstrip("/")
    rows = [
        {"handle": link.handle, "url": f"{base}/d/{token}", "expires": link.expires.isoformat()}
        for link, token in made
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    sys.stdout.write("".join(f"{r['handle']}\t{r['url']}\n" for r in rows))
    err.print(f"{len(rows)} link(s), working until {made[0][0].expires:%Y-%m-%d %H:%M} UTC")


@links_app.command("revoke")
def links_revoke(ctx: typer.Context) -> None:
    """Revoke every download link made so far (links made from now on work)."""
    epoch = _open(ctx).revoke_links()
    out.print(f"every link made before now is revoked (link epoch {epoch})")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
) -> None:
    """Make an API token and print it once (only a hash of it is kept)."""
    token, row = _open(ctx).create_token(name)
    sys.stdout.write(token + "\n")
    err.print(f"token {row.id} created; it is shown only this once — store it now")


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """List the tokens that work (never the tokens themselves)."""
    rows = _open(ctx).tokens()
    table = Table("id", "name", "starts", "created", box=None)
    for t in rows:
        table.add_row(str(t.id), t.name, f"{t.hint}…", f"{t.created:%Y-%m-%d %H:%M}")
    out.print(table if rows else "no tokens (make one with `leaktrace token create`)")


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token: Annotated[str, typer.Argument(help="Id or name.")]
) -> None:
    """Revoke a token by its id or name; requests that use it are refused from now on."""
    row = _open(ctx).revoke_token(token)
    out.print(f"revoked token {row.id}" + (f" ({row.name})" if row.name else ""))


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest upload accepted, in MB.", min=0.001)
    ] = 100,
    max_video_upload_mb: Annotated[
        float,
        typer.Option(
            help="Largest video accepted (an original or a leak), in MB; streamed to disk.",
            min=0.001,
        ),
    ] = 2048,
    workers: Annotated[
        int | None, typer.Option(help="Processes per batch (default: all cores).", min=1)
    ] = None,
    keep_reports: Annotated[
        int,
        typer.Option(
            help="Days a trace's evidence report is kept (0: for ever); older ones are "
            "deleted at start and after each trace, the trace's record stays.",
            min=0,
            metavar="DAYS",
        ),
    ] = 90,
    processes: Annotated[
        int,
        typer.Option(
            help="Server processes answering requests (uvicorn workers); more than one "
            "suits a registry on PostgreSQL (LEAKTRACE_DB_URL).",
            min=1,
        ),
    ] = 1,
    cluster: Annotated[
        str | None,
        typer.Option(
            envvar="LEAKTRACE_CLUSTER",
            help="Make the batches' copies on this Dask scheduler's workers (tcp://host:8786); "
            "the workspace must be on storage every worker mounts at the same path.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the HTTP API and the web page on the workspace (Ctrl-C stops it)."""
    import uvicorn

    from .service import create_app

    options: dict[str, Any] = {
        "home": str(_home(ctx).absolute()),
        "max_upload": int(max_upload_mb * 1024 * 1024),
        "max_video_upload": int(max_video_upload_mb * 1024 * 1024),
        "workers": workers,
        "keep_reports": keep_reports,
        "cluster": cluster or None,
    }
    ws = _open(ctx)  # refused here, in one line, rather than in every process
    if not ws.tokens():
        err.print("no API tokens yet: make one with `leaktrace token create`")
    ws.close()
    from .service.serving import OPTIONS_ENV, log_config

    if processes == 1:
        home = options.pop("home")
        service = create_app(home, **options)
        uvicorn.run(service, host=host, port=port, log_level="info", log_config=log_config())
        return
    os.environ[OPTIONS_ENV] = json.dumps(options)
    uvicorn.run(
        "leaktrace.service.serving:app_from_environment",
        factory=True,
        workers=processes,
        host=host,
        port=port,
        log_level="info",
        log_config=log_config(),
    )


def main() -> None:
    """Console-script entry point."""
    app()
