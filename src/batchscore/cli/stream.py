"""``batchscore stream``: sensor event streams windowed into time-partitioned Parquet."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from ._common import (
    ServerOpt,
    TokenOpt,
    WorkspaceOpt,
    backend,
    console,
    err_console,
    errors,
    open_ws,
)

__all__ = ["app"]

app = typer.Typer(
    help="Stream sensor events (HTTP, Redis Streams) into tumbling windows landed as Parquet."
    "\n\nExample:\n\n"
    "    batchscore stream create sensors --window 60s --lateness 30s "
    "--redis redis://localhost:6379/0\n"
    "    batchscore stream consume sensors",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="The stream's name.")]


def _when(seconds: float | None) -> str:
    from ..streaming.events import format_time

    return "-" if seconds is None else format_time(seconds)


@app.command("create")
def create(
    name: NameArg,
    window: Annotated[str, typer.Option(help="Window length (60s, 5min, 1h).")] = "60s",
    lateness: Annotated[str, typer.Option(
        help="Allowed lateness: how long after the latest event a window stays open.")
    ] = "30s",
    aggregates: Annotated[str, typer.Option(
        help="Aggregates of value per (device, sensor) and window, comma-separated: count, "
        "sum, mean, min, max, std, median, first, last (count is always there).")
    ] = "count,mean,min,max",
    max_future: Annotated[str, typer.Option(
        help="Refuse events further than this in the future.")] = "1h",
    redis: Annotated[str | None, typer.Option(
        help="Redis URL (default: $BATCHSCORE_REDIS_URL).", show_default=False)] = None,
    redis_key: Annotated[str | None, typer.Option(
        help="Redis stream key (default: batchscore:stream:NAME).", show_default=False)] = None,
    partition: Annotated[str, typer.Option(help="Partition windows by hour or day.")] = "hour",
    endpoint: Annotated[str | None, typer.Option(
        help="Batch endpoint to invoke once per closed partition.", show_default=False)
    ] = None,
    endpoint_output: Annotated[str | None, typer.Option(
        help="Data store folder of the endpoint's outputs (one folder per partition).",
        show_default=False)] = None,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Create a stream: its windows, lateness, aggregates, Redis stream and partitions.

    Example:

        batchscore stream create sensors --window 60s --lateness 30s --redis redis://localhost:6379/0
        batchscore stream create sensors --endpoint anomalies --endpoint-output scores/
    """
    with errors():
        body: dict[str, Any] = dict(
            window=window, lateness=lateness, aggregates=aggregates.split(","),
            max_future=max_future, redis_url=redis, redis_key=redis_key, partition=partition,
            endpoint=endpoint, endpoint_output=endpoint_output)
        made = backend(workspace, server, token).create_stream(name, **body)
        console.print(f"stream {made['name']}: {made['window_s']}s windows, "
                      f"lateness {made['lateness_s']:g}s, {','.join(made['aggregates'])}; "
                      f"lands in {made['prefix']}/ of the data store")


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """List streams with their counters.

    Example:

        batchscore stream list --json
    """
    with errors():
        found = backend(workspace, server, token).list_streams()
        if as_json:
            console.print(json.dumps(found, indent=2, default=str))
            return
        for s in found:
            console.print(f"{s['name']}\t{s['window_s']}s\treceived {s['events_received']}\t"
                          f"windows {s['windows_landed']}\twatermark {_when(s['watermark'])}")


@app.command("show")
def show(
    name: NameArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show a stream: settings, counters, watermark, consumer and closed partitions.

    Example:

        batchscore stream show sensors
    """
    with errors():
        found = backend(workspace, server, token).stream_status(name)
        if as_json:
            console.print(json.dumps(found, indent=2, default=str))
            return
        rows = [
            ("window", f"{found['window_s']}s, lateness {found['lateness_s']:g}s, "
                       f"{','.join(found['aggregates'])}"),
            ("redis", f"{found['redis_url'] or '(workspace default)'} key {found['redis_key']}"),
            ("lands in", f"{found['prefix']}/ (by {found['partition_by']})"),
            ("endpoint", f"{found['endpoint']} -> {found['endpoint_output']}/"
             if found["endpoint"] else "-"),
            ("events received", found["events_received"]),
            ("  in windows", found["events_landed"]),
            ("  late, kept aside", found["events_late"]),
            ("  rejected", found["events_rejected"]),
            ("windows landed", found["windows_landed"]),
            ("partitions closed", found["partitions_closed"]),
            ("watermark", _when(found["watermark"])),
            ("pending in Redis", found.get("pending", "-")),
            ("consumer", found["lease_owner"] or "-"),
        ]
        for label, value in rows:
            console.print(f"{label:<20}{value}")
        for part in found.get("partitions", []):
            what = (f"job {part['job_id']}" if part["job_id"] else part["error"] or "")
            console.print(f"  {part['partition_key']}  {what}")


@app.command("delete")
def delete(
    name: NameArg,
    purge: Annotated[bool, typer.Option(
        help="Also remove what landed in the data store and the Redis stream.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Delete a stream's definition and ledger; landed data stays unless --purge.

    Example:

        batchscore stream delete sensors --purge
    """
    with errors():
        backend(workspace, server, token).delete_stream(name, purge=purge)
        console.print(f"deleted stream {name}" + (" and its data" if purge else ""))


@app.command("send")
def send(
    name: NameArg,
    file: Annotated[Path, typer.Argument(help="Events: a CSV file with a header, or JSON lines.",
                                         show_default=False)],
    batch: Annotated[int, typer.Option(help="Events per request / Redis transaction.")
                     ] = 5000,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Send the events of a CSV or JSON Lines file to a stream (for tests and demos).

    Every event is checked first: a file with a bad event is refused whole, naming each one.

    Example:

        batchscore stream send sensors sensor_data.csv
    """
    from ..errors import SpecError
    from ..streaming import read_event_file, validate_events
    from ..streaming.ingest import MAX_BATCH

    with errors():
        if not 1 <= batch <= MAX_BATCH:
            raise SpecError(f"--batch must be 1 to {MAX_BATCH}, got {batch}")
        raws = read_event_file(file)
        found = backend(workspace, server, token)
        max_future = found.stream_max_future(name)
        validate_events(raws, source=str(file), max_future_s=max_future)  # all, before any
        sent = 0
        for start in range(0, len(raws), batch):
            sent += found.send_events(name, raws[start:start + batch], source=str(file))
        console.print(f"sent {sent} events to stream {name}")


@app.command("consume")
def consume(
    name: NameArg,
    consumer: Annotated[str | None, typer.Option(
        help="Consumer name in the Redis group (default: this host's name).",
        show_default=False)] = None,
    batch: Annotated[int, typer.Option(help="Entries read per XREADGROUP.")] = 1000,
    until_idle: Annotated[float | None, typer.Option(
        help="Stop once nothing new came for this many seconds.", show_default=False)] = None,
    close_all: Annotated[bool, typer.Option(
        help="At the end, land the windows still open (end of input).")] = False,
    max_events: Annotated[int | None, typer.Option(
        help="Stop after reading this many entries.", show_default=False)] = None,
    progress: Annotated[bool, typer.Option(help="Show a live progress line.")] = True,
    workspace: WorkspaceOpt = None,
) -> None:
    """Consume a stream here, in the foreground, until Ctrl-C (which stops cleanly).

    Example:

        batchscore stream consume sensors
        batchscore stream consume sensors --until-idle 5 --close-all
    """
    from ..errors import SpecError
    from ..streaming import StreamConsumer

    with errors():
        if batch < 1:
            raise SpecError(f"--batch must be 1 or more, got {batch}")
        ws = open_ws(workspace)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        progress = progress and err_console.is_terminal
        live = Live(Text(f"stream {name}: starting"), console=err_console,
                    refresh_per_second=4, transient=True)
        began = time.monotonic()

        def show(stats: Any) -> None:
            live.update(_status(name, stats, time.monotonic() - began))

        worker = StreamConsumer(ws, name, consumer=consumer, batch=batch,
                                progress=show if progress else None)
        try:
            if progress:
                live.start()
            stats = worker.run(stop, max_events=max_events, until_idle_s=until_idle,
                               close_all=close_all)
        finally:
            if progress:
                live.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        how = "stopped" if stop.is_set() else "done"
        console.print(f"{how}: {_line(name, stats)}")


def _status(name: str, stats: Any, elapsed: float) -> Text:
    """The live line: short enough for a terminal, cut with an ellipsis otherwise."""
    rate = stats.read / elapsed if elapsed > 0 else 0.0
    text = (f"{name}: read {stats.read} ({rate:.0f}/s) | windows {stats.windows} "
            f"({stats.events} events) | late {stats.late} | rejected {stats.rejected} | "
            f"open {stats.open_windows} ({stats.open_events}) | watermark "
            f"{_when(stats.watermark)} | Ctrl-C stops")
    return Text(text, no_wrap=True, overflow="ellipsis")


def _line(name: str, stats: Any) -> str:
    rate = stats.read / stats.seconds if stats.seconds else 0.0
    return (f"stream {name}: read {stats.read}, landed {stats.events} events in "
            f"{stats.windows} windows, late {stats.late}, rejected {stats.rejected}, "
            f"duplicates {stats.duplicates}, partitions closed {stats.partitions}, open "
            f"{stats.open_windows} windows ({stats.open_events} events), watermark "
            f"{_when(stats.watermark)}" + (f", {rate:.0f} entries/s" if rate else ""))
