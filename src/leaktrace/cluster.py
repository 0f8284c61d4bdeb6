"""Batches of copies on a Dask cluster: the same tasks as the local process pool, run on
the workers of a ``distributed`` scheduler.

``make_copies(..., cluster="tcp://scheduler:8786")`` connects with :func:`connect` before it
touches the registry (an unreachable scheduler changes nothing), and submits each copy
through a :class:`ClusterExecutor`, a ``concurrent.futures.Executor`` like the local pool's.
The parent keeps the registry: it records the copies pending, then each one done as its
result comes back, exactly as with the local pool; the workers only compute copies and write
their files.

Storage: a POSIX folder every worker mounts at the same path as the machine running the batch
(NFS, CephFS, a cloud file share): the workspace (originals, variants, the batch's lock), the
sources and the output folder. Workers run as the same user as the batch (the workspace is
private to its owner, mode 0700).

The key travels as an argument of every task, never in the registry or a log line (a
:class:`~leaktrace.keys.Key` shows only its fingerprint when printed, so Dask's "Compute
Failed" log lines show that). A task argument rather than a worker plugin: the scheduler
forgets it with the batch's tasks, also when the batch's process dies, whereas a plugin would
stay registered (key included) on the scheduler and every worker that joins later; and two
batches with different keys can share one worker. It costs 32 bytes per task. Workers keep
the original they mark decoded, with its plan (and so the key), until the batch ends.

Each task holds the batch's lock (shared) while it runs, as a local pool's processes hold it
for their life, so a batch whose process died is not settled while a worker may still write
a copy; a task that starts after its batch ended (its lock file gone) writes nothing. A
worker that dies is replaced by Dask, which runs its tasks again elsewhere (three times at
most, then the batch fails with :class:`~leaktrace.errors.ClusterError`); a copy is written
under a temporary name and linked into place, so a rerun never finds half a copy.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import cv2

from .errors import ClusterError, WorkspaceError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ClusterExecutor", "connect", "translated"]

T = TypeVar("T")


def connect(address: str) -> Client:
    """A client of the Dask scheduler at ``address`` (``tcp://host:8786``, ``tls://...``)
    that has at least one worker; waits at most Dask's connect timeout
    (``distributed.comm.timeouts.connect``, 30 s unless configured)."""
    try:
        from distributed import Client
        from distributed.comm import get_address_host_port
    except ImportError as exc:
        raise ClusterError(
            "a cluster needs Dask distributed: pip install 'leaktrace[cluster]'"
        ) from exc
    try:  # before a client exists: one that failed on its address hangs when collected
        get_address_host_port(address)
    except ValueError as exc:
        raise ClusterError(
            f"{address!r} is not a Dask scheduler's address (tcp://host:8786): {exc}"
        ) from exc
    try:
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    if not any(client.nthreads().values()):
        client.close()
        raise ClusterError(f"the Dask scheduler at {address} has no workers")
    return client


class ClusterExecutor(Executor):
    """Submit a batch's copies to a Dask cluster, each run holding the batch's ``lock``.

    ``slots`` is how many tasks the cluster runs at once (its workers' threads when made).
    ``shutdown`` always waits for what was submitted (a task that runs cannot be stopped),
    then has the workers drop the original they kept decoded, with its plan and the key.
    """

    def __init__(self, client: Client, lock: Path) -> None:
        self._client = client
        self._executor = client.get_executor(pure=False)
        self._lock = os.fspath(lock)
        self.slots = max(1, sum(client.nthreads().values()))

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._executor.submit(_locked, self._lock, fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # Dask cannot stop a running task; with at most two tasks per worker in flight,
        # waiting for them costs two copies' time.
        self._executor.shutdown(wait=True)
        try:  # the workers' decoded original and its plan, which holds the key
            self._client.run(_forget, on_error="ignore")
        except (OSError, TimeoutError):  # the scheduler is gone
            pass


@contextmanager
def translated(address: str) -> Iterator[None]:
    """Dask's failures of a batch's tasks as :class:`ClusterError`."""
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    try:
        yield
    except KilledWorker as exc:
        raise ClusterError(
            "a copy's task killed every Dask worker that ran it (out of memory?); "
            "run the same command again, on workers with more memory if it recurs"
        ) from exc
    except CancelledError as exc:
        raise ClusterError(
            f"the Dask scheduler at {address} dropped the batch's tasks (did it stop?); "
            "run the same command again"
        ) from exc


def _forget() -> None:
    from .workflow import _worker_cache

    _worker_cache.clear()


def _locked(lock: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on a worker holding the batch's lock (shared), with one OpenCV thread (a
    worker's processes and threads run copies side by side)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(lock)):
            raise WorkspaceError(
                f"{os.path.dirname(os.path.dirname(lock))}: not found on the Dask worker at "
                f"{socket.gethostname()}: the workspace, the originals and the output folder "
                "must be on storage every worker mounts at the same path"
            ) from None
        raise WorkspaceError(f"{lock}: the batch ended before this copy started") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            settled = os.fstat(fd).st_ino != os.stat(lock).st_ino  # removed, made anew
        except FileNotFoundError:
            settled = True
        if settled:
            raise WorkspaceError(f"{lock}: the batch ended before this copy started")
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            cv2.setNumThreads(threads)
    finally:
        os.close(fd)
