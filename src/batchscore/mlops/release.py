"""The release pipeline: staging deployment, smoke test, promotion, production swap, smoke test.

1. the version to release (default: the one holding ``staging``) is deployed as a ``staging``
   endpoint process on a free port (:func:`~batchscore.serving.supervisor.start_deployment`);
2. it is smoke-tested through its API (:func:`smoke_test`): ``/ping``, ``/version``, the two
   sample rows of the original smoke test answered with two finite numbers, and the schema
   (a row with one column too many must answer 400); the staging endpoint is then stopped;
3. a failed check raises :class:`SmokeTestError` naming it: the ``production`` alias and the
   running production deployment are not touched;
4. otherwise the version is promoted to ``production`` and, when a production deployment
   runs, it is swapped to the new version without losing a request and smoke-tested again;
   a failure there swaps the deployment back to the version it served (again without losing
   a request) and puts the ``production`` alias and its history back exactly as they were
   (no alias, when none was set), then raises :class:`SmokeTestError` naming the checks.
   A swap that fails leaves the old version serving and also puts the alias back.

:func:`rollback_release` restores the previous production version and swaps a running
production deployment back to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import BatchscoreError, SmokeTestError
from ..workspace import Workspace

__all__ = [
    "SAMPLE_ROWS",
    "ReleaseResult",
    "RollbackResult",
    "SmokeCheck",
    "SmokeTestError",
    "release",
    "rollback_release",
    "smoke_test",
]

# The two sample rows of the original smoke test (MLOpsPython's smoke_test_scoring_service.py)
SAMPLE_ROWS: list[list[float]] = [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]]


@dataclass(frozen=True)
class SmokeCheck:
    """One check of a smoke test: its name, whether it passed, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ReleaseResult:
    name: str
    version: int
    previous: int | None
    staging_checks: list[SmokeCheck]
    production_checks: list[SmokeCheck] = field(default_factory=list)
    swapped: bool = False
    url: str | None = None


@dataclass(frozen=True)
class RollbackResult:
    name: str
    version: int
    swapped: bool
    url: str | None = None


def _finite_numbers(predictions: Any, count: int) -> str | None:
    if not isinstance(predictions, list) or len(predictions) != count:
        got = len(predictions) if isinstance(predictions, list) else type(predictions).__name__
        return f"expected {count} predictions, got {got}"
    for i, value in enumerate(predictions):
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(
                value):
            return f"prediction {i} is {value!r}, not a finite number"
    return None


def smoke_test(url: str, name: str, version: int,
               rows: list[list[Any]] | None = None) -> list[SmokeCheck]:
    """Check the endpoint at ``url`` through its API; every check runs, none raises."""
    import httpx

    sample = SAMPLE_ROWS if rows is None else rows
    checks: list[SmokeCheck] = []

    def check(check_name: str, run: Callable[[httpx.Client], str | None]) -> None:
        try:
            from ..tlsconfig import client_verify  # an https deployment: $BATCHSCORE_CA_FILE

            with httpx.Client(base_url=url, timeout=30.0, verify=client_verify()) as http:
                problem = run(http)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        checks.append(SmokeCheck(check_name, problem is None, problem or "ok"))

    def ping(http: httpx.Client) -> str | None:
        r = http.get("/ping")
        return None if r.status_code == 200 else f"GET /ping answered {r.status_code}"

    def version_(http: httpx.Client) -> str | None:
        r = http.get("/version")
        expected = {"model": name, "version": str(version)}
        if r.status_code != 200:
            return f"GET /version answered {r.status_code}"
        return None if r.json() == expected else f"GET /version answered {r.json()}, " \
                                                  f"expected {expected}"

    def sample_rows(http: httpx.Client) -> str | None:
        r = http.post("/invocations", json={"instances": sample})
        if r.status_code != 200:
            return f"POST /invocations answered {r.status_code}: {r.text[:300]}"
        return _finite_numbers(r.json().get("predictions"), len(sample))

    def schema(http: httpx.Client) -> str | None:
        wrong = [[*row, 0] for row in sample]
        r = http.post("/invocations", json={"instances": wrong})
        if r.status_code == 400:
            return None
        return (f"a request with {len(wrong[0])} columns answered {r.status_code}, "
                f"expected 400")

    for check_name, run in (("ping", ping), ("version", version_),
                            ("sample rows", sample_rows), ("schema", schema)):
        check(check_name, run)
    return checks


def _failed(checks: list[SmokeCheck]) -> str:
    return "; ".join(f"check {c.name!r} failed: {c.detail}" for c in checks if not c.ok)


def release(ws: Workspace, name: str, version: int | None = None, *,
            rows: list[list[Any]] | None = None, timeout: float = 120.0,
            log: Callable[[str], None] = lambda _: None) -> ReleaseResult:
    """Release ``version`` of ``name`` (default: its ``staging`` version) to production.

    Raises :class:`SmokeTestError` naming the failed checks when a smoke test fails: on
    staging nothing in production changed; in production the deployment is swapped back to
    the version it served and the ``production`` alias and its history are put back as they
    were (no alias, when none was set)."""
    from ..registry.models import get_version, production_state, promote, restore_production
    from ..serving.supervisor import get_deployment, start_deployment, stop_deployment
    from ..serving.supervisor import swap_deployment as swap

    target = get_version(ws, f"{name}/{version}" if version is not None else f"{name}@staging")
    previous, history = production_state(ws, name)

    log(f"deploying {name}/{target.version} to staging ...")
    staging = start_deployment(ws, name, target.version, env="staging", port=0,
                               log_requests=False, timeout=timeout)
    try:
        log(f"smoke test of staging at {staging.url} ...")
        staged = smoke_test(staging.url, name, target.version, rows)
    finally:
        stop_deployment(ws, name, "staging")
    for c in staged:
        log(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
    untouched = (f"production stays at version {previous}" if previous is not None
                 else "no production version was set")
    if not all(c.ok for c in staged):
        raise SmokeTestError(f"smoke test of {name}/{target.version} on staging failed: "
                             f"{_failed(staged)}; {untouched}", staged)

    alias_back = (f"the production alias is back on version {previous}" if previous is not None
                  else "the production alias is removed again")
    promote(ws, name, target.version)
    log(f"{name}/{target.version} is production")
    running = get_deployment(ws, name, "production")
    if running is None:
        log(f"no production deployment of {name} runs: start one with "
            f"`batchscore model deploy {name}`")
        return ReleaseResult(name, target.version, previous, staged)
    if running.version == target.version:
        checks = smoke_test(running.url, name, target.version, rows)
        for c in checks:
            log(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
        if not all(c.ok for c in checks):
            restore_production(ws, name, previous, history)
            raise SmokeTestError(
                f"smoke test of {name}/{target.version} in production failed: "
                f"{_failed(checks)}; the deployment at {running.url} already served it and is "
                f"not changed; {alias_back}", checks)
        return ReleaseResult(name, target.version, previous, staged, checks, False, running.url)

    log(f"swapping the production deployment at {running.url} from version "
        f"{running.version} to {target.version} ...")
    try:
        swapped = swap(ws, name, target.version, timeout=timeout + 60)
    except BaseException:
        restore_production(ws, name, previous, history)
        log(alias_back)
        raise
    checks = smoke_test(swapped.url, name, target.version, rows)
    for c in checks:
        log(f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}")
    if all(c.ok for c in checks):
        return ReleaseResult(name, target.version, previous, staged, checks, True, swapped.url)

    log(f"swapping the production deployment at {running.url} back to version "
        f"{running.version} ...")
    try:
        swap(ws, name, running.version, timeout=timeout + 60)
        back = f"the deployment at {running.url} serves version {running.version} again"
    except BatchscoreError as exc:
        back = (f"swapping the deployment at {running.url} back to version {running.version} "
                f"failed too, it still serves version {target.version}: {exc}")
    finally:
        restore_production(ws, name, previous, history)
    raise SmokeTestError(f"smoke test of {name}/{target.version} in production failed: "
                         f"{_failed(checks)}; {back}; {alias_back}", checks)


def rollback_release(ws: Workspace, name: str, *, deploy: bool = True,
                     timeout: float = 120.0) -> RollbackResult:
    """Restore the previous production version and, with ``deploy`` and a running production
    deployment, swap that deployment back to it (first: a failed swap changes nothing)."""
    from ..registry.models import rollback, rollback_target
    from ..serving.supervisor import get_deployment, swap_deployment

    target = rollback_target(ws, name)  # raises when there is nothing to roll back to
    running = get_deployment(ws, name, "production") if deploy else None
    swapped = None
    if running is not None and target != running.version:
        swapped = swap_deployment(ws, name, target, timeout=timeout + 60)
    version = rollback(ws, name)
    return RollbackResult(name, version.version, swapped is not None,
                          running.url if running is not None else None)
