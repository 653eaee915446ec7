"""Executors: where the units of a run are processed. The run hands an executor the worker
function and the units; results come back to the run's process, the only writer.

* :class:`Serial`: a plain loop in split order (``jobs=1``, and any run with one unit);
* :class:`Loky`: ``jobs`` local worker processes through joblib (its default backend);
* :class:`Dask`: every worker of the dask.distributed cluster of the current client
  (:func:`dask_client`), through joblib's dask backend.

Parallel executors take the largest units first (most boxes, then most pixels), so no long image
is left running alone at the end; order never changes a store (entries are keyed by id and
written in split order). Several GPUs are not an executor but several runs (``devices.py``).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from ..errors import ConfigError

BACKENDS = ("loky", "dask")


def cpu_count() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_jobs(jobs: int) -> int:
    """``0`` means every core this process may use."""
    if jobs < 0:
        raise ValueError(f"--jobs must be 0 (all cores) or a positive number, not {jobs}")
    return cpu_count() if jobs == 0 else jobs


class Serial:
    parallel = False

    def map(self, fn: Callable, items: Iterable[tuple]) -> Iterator[Any]:
        for args in items:
            yield fn(*args)


class Loky:
    parallel = True

    def __init__(self, jobs: int):
        self.jobs = jobs

    def map(self, fn: Callable, items: Iterable[tuple]) -> Iterator[Any]:
        from joblib import Parallel, delayed
        # joblib's default backend, or whatever the caller set with joblib.parallel_config
        yield from Parallel(n_jobs=self.jobs, return_as="generator_unordered")(delayed(fn)(*a) for a in items)


class Dask:
    parallel = True

    def map(self, fn: Callable, items: Iterable[tuple]) -> Iterator[Any]:
        from joblib import Parallel, delayed, parallel_config
        with parallel_config(backend="dask"):
            yield from Parallel(n_jobs=-1, return_as="generator_unordered")(delayed(fn)(*a) for a in items)


def make_executor(backend: str, jobs: int, units: int) -> Serial | Loky | Dask:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if backend == "dask":
        return Dask()
    return Serial() if jobs == 1 or units <= 1 else Loky(jobs)


@contextmanager
def dask_client(address: str | None, timeout: str = "20s"):
    """A ``distributed.Client`` connected to the scheduler at ``address`` for the duration of a
    run (joblib's dask backend sends work to the current client). Workers must reach the data
    root and the output root at the same paths as this process (a shared file system), and
    should run one thread each: ``dask worker ADDRESS --nthreads 1 --nworkers N``."""
    if not address:
        raise ConfigError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
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
    """Nothing for ``loky``; a dask client for ``dask``."""
    if backend == "dask":
        with dask_client(scheduler) as client:
            yield client
    else:
        if scheduler:
            raise ConfigError("--scheduler is only used with --backend dask")
        yield None
