"""Joining a Ray cluster: a transient failure of the Ray client proxy to start a server is
tried again; any other failure is one clear error at once."""

from __future__ import annotations

import pytest

from batchscore.errors import UsageError
from batchscore.jobs.executors import ray as ray_executor


class _Ray:
    """The part of the ray module that _connect uses, failing its first ``fail`` inits."""

    def __init__(self, fail: int, message: str) -> None:
        self.fail, self.message, self.inits, self.shutdowns = fail, message, 0, 0

    def is_initialized(self) -> bool:
        return False

    def init(self, **_: object) -> None:
        self.inits += 1
        if self.inits <= self.fail:
            raise ConnectionAbortedError(self.message)

    def shutdown(self) -> None:
        self.shutdowns += 1


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_executor.time, "sleep", lambda _s: None)
    monkeypatch.setattr(ray_executor, "_probe", lambda _a: "something listens there")


TRANSIENT = ("Initialization failure from server: RuntimeError: Starting Ray client server "
             "failed. See ray_client_server_23000.err for detailed logs.")


def test_a_client_server_that_failed_to_start_is_tried_again() -> None:
    ray = _Ray(fail=2, message=TRANSIENT)
    ray_executor._connect(ray, "ray://127.0.0.1:10001", 1)
    assert (ray.inits, ray.shutdowns) == (3, 2)


# the proxy's own start-up of the server failed (seen under a CPU hog: Ray's psutil check of
# the server process it had just started, which had exited)
PROXY_START_FAILED = """Initialization failure from server:
Traceback (most recent call last):
  File "ray/util/client/server/proxier.py", line 765, in Datapath
    if not self.proxy_manager.start_specific_server(
  File "ray/util/client/server/proxier.py", line 396, in start_specific_server
    cmd = psutil_proc.cmdline()
  File "ray/thirdparty_files/psutil/_pslinux.py", line 1648, in _raise_if_zombie
    raise ZombieProcess(self.pid, self._name, self._ppid)
psutil.ZombieProcess: PID still exists but it's a zombie (pid=20851)
"""


def test_a_proxy_that_failed_starting_the_server_is_tried_again() -> None:
    ray = _Ray(fail=1, message=PROXY_START_FAILED)
    ray_executor._connect(ray, "ray://127.0.0.1:10001", 1)
    assert (ray.inits, ray.shutdowns) == (2, 1)


def test_other_server_side_init_failures_are_not_tried_again() -> None:
    ray = _Ray(fail=1, message="Initialization failure from server:\nTraceback (most recent "
               "call last):\n  File \"ray/util/client/server/server.py\", in Init\n"
               "ValueError: bad job config")
    with pytest.raises(UsageError, match="bad job config"):
        ray_executor._connect(ray, "ray://127.0.0.1:10001", 1)
    assert ray.inits == 1


def test_it_gives_up_after_the_last_try() -> None:
    ray = _Ray(fail=99, message=TRANSIENT)
    with pytest.raises(UsageError, match="could not join the Ray cluster"):
        ray_executor._connect(ray, "ray://127.0.0.1:10001", 1)
    assert ray.inits == ray_executor.CLIENT_START_TRIES


def test_other_failures_are_not_tried_again() -> None:
    ray = _Ray(fail=1, message="version mismatch: the cluster runs Ray 2.9")
    with pytest.raises(UsageError, match="version mismatch"):
        ray_executor._connect(ray, "ray://127.0.0.1:10001", 1)
    assert ray.inits == 1
