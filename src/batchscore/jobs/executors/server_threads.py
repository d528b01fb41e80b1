"""What the local executor's fork server imports last, once, when it starts (after
:mod:`.preload`, whose imports load the native libraries): the server's native thread pools
sized to one thread (:func:`..threads.size_for_forks`). Every worker it forks inherits them so,
and one that wants one thread (a worker per CPU or more) sets nothing: resized in a forked
worker, OpenBLAS starts threads that spin (``jobs/threads.py``). The server runs no work of
its own. A library that refuses is left to the workers, which size their own.

A module of its own, imported by the fork server only: importing :mod:`.preload` elsewhere
(a test) does not resize that process's pools.
"""

from __future__ import annotations

import contextlib

from ..threads import size_for_forks

with contextlib.suppress(Exception):
    size_for_forks(1)
