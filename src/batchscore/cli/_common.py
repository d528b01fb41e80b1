"""What every command shares: the workspace and server options, the backend they choose,
the progress bars, and turning our errors into one message."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..backend import Backend, open_backend
from ..errors import BatchscoreError, SpecError
from ..jobs.runner import ProgressSnapshot
from ..workspace import Workspace, open_workspace

__all__ = [
    "Bar",
    "EnvManagerOpt",
    "ExecutorOpt",
    "FrameBar",
    "RayAddressOpt",
    "Report",
    "ServerOpt",
    "TokenOpt",
    "WorkspaceOpt",
    "backend",
    "batch_size",
    "console",
    "err_console",
    "errors",
    "key_values",
    "open_ws",
]

# Everything printed is data (paths, reasons, tracebacks): no markup, no highlighting, and
# long lines are not wrapped, so that output can be copied and piped as it is.
console = Console(markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

WorkspaceOpt = Annotated[
    str | None,
    typer.Option(
        "--workspace", "-w", envvar="BATCHSCORE_WORKSPACE",
        help="Workspace folder (default ./.batchscore).", show_default=False,
    ),
]


EnvManagerOpt = Annotated[str | None, typer.Option(
    help="local (the workers run the script in batchscore's Python) or virtualenv (in a "
    "cached virtualenv of the deployment's environment / MLflow model requirements); "
    "default: the workspace's executor.env_manager, else local.",
    show_default=False)]
ServerOpt = Annotated[str | None, typer.Option(
    "--server", envvar="BATCHSCORE_SERVER",
    help="Act through a running service (its URL) instead of the workspace.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="BATCHSCORE_TOKEN",
    help="API token for --server (default: for a service on this machine, the admin token "
    "it wrote in the workspace's service/admin.token).")]

ExecutorOpt = Annotated[str | None, typer.Option(
    help="local (worker processes here) or ray (Ray actors); default: the workspace's "
    "executor.kind.", show_default=False)]
RayAddressOpt = Annotated[str | None, typer.Option(
    help="Ray cluster to join (ray://HOST:10001, HOST:6379 or auto); implies --executor ray. "
    "Default: the workspace's executor.ray_address, else a local Ray instance.",
    show_default=False)]


def backend(workspace: str | None = None, server: str | None = None,
            token: str | None = None) -> Backend:
    """The backend of a command: the service at --server, else the workspace."""
    return open_backend(workspace, server, token)


class Bar:
    """A progress bar of mini-batches, with items succeeded and failed."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("mini-batches  {task.fields[items]}"), TimeElapsedColumn(),
            TimeRemainingColumn(), console=err_console, disable=not enabled, transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> Bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, snap: ProgressSnapshot) -> None:
        items = f"items {snap.items_succeeded}/{snap.items_total} ok, {snap.items_failed} failed"
        done = snap.minibatches_done + snap.minibatches_failed
        if self.task is None:
            self.task = self.progress.add_task(snap.job_id, total=snap.minibatches_total,
                                               items=items)
        self.progress.update(self.task, completed=done, items=items)


class FrameBar:
    """Frames done, frames/s and time left."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]frames"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[fps]} frames/s"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
            disable=not enabled,
        )
        self.task: Any = None

    def __enter__(self) -> FrameBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, snap: ProgressSnapshot) -> None:
        if self.task is None:
            self.task = self.progress.add_task("frames", total=snap.items_total, fps="-")
        task = self.progress.tasks[0]
        elapsed = task.elapsed or 0.0
        done = snap.items_succeeded + snap.items_in_progress
        fps = f"{done / elapsed:.1f}" if elapsed > 0 else "-"
        self.progress.update(self.task, completed=done, fps=fps)


class Report:
    """The backend's :class:`~batchscore.backend.Reporter` of a command: what it says goes to
    stdout, its remarks to stderr, and its progress to a bar (shown when ``progress``)."""

    def __init__(self, progress: bool = False) -> None:
        self.progress = progress

    def say(self, text: str) -> None:
        console.print(text)

    def note(self, text: str) -> None:
        err_console.print(text)

    def bar(self, frames: bool = False) -> Bar | FrameBar:
        return FrameBar(self.progress) if frames else Bar(self.progress)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Print a BatchscoreError as one line on stderr and exit with its code (2 for bad input)."""
    try:
        yield
    except BatchscoreError as exc:
        err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


def key_values(pairs: Iterable[str] | None,
               error: str = "--param takes KEY=VALUE, got {pair!r}") -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options as a dict (keys stripped); a pair without ``=`` or
    without a key is a SpecError, ``error`` formatted with the pair."""
    found: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(error.format(pair=pair))
        found[key.strip()] = value
    return found


def batch_size(value: str | None) -> int | str | None:
    """--mini-batch-size: a count of files or rows, or a size such as 10kb."""
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def open_ws(path: str | None) -> Workspace:
    return open_workspace(path)
