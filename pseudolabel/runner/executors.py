"""Executors: where the units of a run are processed. The run hands an executor the worker
function and the units; results come back to the run's process, the only writer.

* :class:`Serial`: a plain loop in split order (``jobs=1``, and any run with one unit);
* :class:`Loky`: ``jobs`` local worker processes through joblib (its default backend);
* :class:`Dask`: every worker of the dask.distributed cluster of the current client
  (:func:`dask_client`), through joblib's dask backend.

Parallel executors take the largest units first (most boxes, then most pixels), so no long image
is left running alone at the end; order never changes a store (entries are keyed by id and
written in split order). Several GPUs are not an executor but several runs (``gpus.py``).
"""
from __future__ import annotations

import os
from pathlib import Path
import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from ..core.errors import ConfigError, PseudolabelError

class WorkerDied(PseudolabelError):
    """A worker process ended abruptly (killed, out of memory, a crash in native code)."""


def _signal_of(exc: Exception) -> str:
    """'killed by SIGKILL' (or the like) from loky's message about a terminated worker."""
    found = re.search(r"\{(?:[^}]*\b)?(SIG[A-Z]+)", str(exc)) or re.search(r"(SIG[A-Z]+)", str(exc))
    return f"killed by {found.group(1)}" if found else "it ended abruptly"


class Serial:
    parallel = False

    def map(self, fn: Callable, items: Iterable[tuple]) -> Iterator[Any]:
        for args in items:
            yield fn(*args)


_WATCHING: list[int] = []


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has died (exited, or a zombie not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:                      # no /proc: ask the kernel (a zombie then counts as alive)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def _watch_parent(parent: int) -> None:
    """In a worker process: exit at once when ``parent`` (the run's process) is gone, so a run
    killed with SIGKILL leaves no worker behind finishing a long image for nobody. Its children
    are re-parented the moment it dies, zombie or not, so ``getppid`` tells. A task can still
    reach a worker after the run died (it was already in the worker's pipe): then the worker is
    no longer the run's child and the run is gone, and it exits before starting the image. A
    worker that was never the run's child (another joblib backend) is left alone."""
    if _WATCHING or os.getpid() == parent:
        return
    if os.getppid() != parent:
        if _gone(parent):
            os._exit(1)
        return
    _WATCHING.append(parent)

    def watch():
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)
    threading.Thread(target=watch, name="pseudolabel-parent-watch", daemon=True).start()


def in_worker(parent: int, fn: Callable, *args) -> Any:
    """What a local worker process runs: ``fn(*args)``, watching its parent first."""
    _watch_parent(parent)
    return fn(*args)


class Loky:
    parallel = True

    def __init__(self, jobs: int):
        self.jobs = jobs

    def map(self, fn: Callable, items: Iterable[tuple]) -> Iterator[Any]:
        from joblib import Parallel, delayed
        from joblib.externals.loky.process_executor import TerminatedWorkerError
        parent = os.getpid()
        # joblib's default backend, or whatever the caller set with joblib.parallel_config
        try:
            yield from Parallel(n_jobs=self.jobs, return_as="generator_unordered")(
                delayed(in_worker)(parent, fn, *a) for a in items)
        except TerminatedWorkerError as exc:
            raise WorkerDied(f"a worker process died while working on an image ({_signal_of(exc)}; out of memory "
                             f"is the usual cause): the images finished so far are kept in the journal; rerun the "
                             f"same command to resume, with fewer --jobs if memory is short") from None


class Dask:
    parallel = True

    def map(self, fn: Callable, items: Iterable[tuple]) -> Iterator[Any]:
        from joblib import Parallel, delayed, parallel_config
        with parallel_config(backend="dask"):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(delayed(fn)(*a) for a in items)


def make_executor(backend: str, jobs: int, units: int) -> Serial | Loky | Dask:
    """The executor for ``units`` units of work (``backend`` and ``jobs`` as checked by
    :class:`~pseudolabel.runner.options.RunOptions`): never more local workers than units."""
    if backend == "dask":
        return Dask()
    return Serial() if jobs == 1 or units <= 1 else Loky(min(jobs, units))


@contextmanager
def dask_client(address: str, timeout: str = "20s"):
    """A ``distributed.Client`` connected to the scheduler at ``address`` for the duration of a
    run (joblib's dask backend sends work to the current client). Workers must reach the data
    root and the output root at the same paths as this process (a shared file system), and
    should run one thread each: ``dask worker ADDRESS --nthreads 1 --nworkers N``."""
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--backend dask needs the 'distributed' package: "
                          "pip install -c constraints.txt 'pseudolabel[dask]'") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the dask scheduler at {address} ({exc})") from None
    try:
        yield client
    finally:
        client.close()


@contextmanager
def backend_context(backend: str, scheduler: str | None):
    """Nothing for ``loky``; a dask client for ``dask`` (opened once for a whole recipe: a step
    inside it finds the client already current and opens none)."""
    if backend == "dask" and not _CLIENTS:
        with dask_client(scheduler) as client:
            _CLIENTS.append(client)
            try:
                yield client
            finally:
                _CLIENTS.pop()
    else:
        yield _CLIENTS[-1] if _CLIENTS else None


_CLIENTS: list = []
