"""``batchscore cluster status``: the executor in use, its nodes or worker processes, and what
batchscore runs on each (issue 19)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from ._common import ServerOpt, TokenOpt, WorkspaceOpt, backend, console, errors

__all__ = ["app"]

app = typer.Typer(help="The machines that run jobs.\n\nExample:\n\n    batchscore cluster status",
                  no_args_is_help=True)


def _print(report: dict[str, Any]) -> None:
    where = f" at {report['address']}" if report.get("address") else ""
    console.print(f"executor: {report['executor']}{where}")
    if report.get("note"):
        console.print(f"note: {report['note']}")
    for node in report["nodes"]:
        r = node["resources"]
        console.print(f"node {node['node_id'][:12]} {node['address']} {node['state']}"
                      f"{' (head)' if node['head'] else ''}: {r['cpus']:g} CPU, "
                      f"{r['gpus']:g} GPU, {r['memory_bytes'] / 2**30:.1f} GiB")
        for w in node["workers"]:
            job = f" job {w['job_id']} ({w['minibatches_done']} mini-batches)" if w[
                "job_id"] else ""
            console.print(f"  worker {w['worker']} {w['state']}{job}")
        for rerun in node["reruns"]:
            console.print(f"  re-run: job {rerun['job_id']} mini-batch {rerun['minibatch']} "
                          f"({rerun['how']} on {rerun['worker']})")
    for w in report["workers"]:
        console.print(f"worker {w['worker'] or '-'} {w['state']} job {w['job_id']} "
                      f"(runner {w['runner']})")
    if not report["nodes"] and not report["workers"] and report["executor"] != "ray":
        console.print("no job runs now")


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
    workspace: WorkspaceOpt = None,
) -> None:
    """Show the executor in use, its nodes or worker processes, and what runs on each.

    For Ray: every node with its address, state (alive, dead, lost), CPUs, GPUs, memory,
    batchscore's workers on it and the mini-batches run again because it was lost. For the
    local executor: the worker processes of the running jobs.

    Example:

        batchscore cluster status
        batchscore cluster status --server https://scoring.internal:8000 --json
    """
    with errors():
        report = backend(workspace, server, token).cluster_status()
        if as_json:
            console.print(json.dumps(report, indent=2))
            return
        _print(report)
