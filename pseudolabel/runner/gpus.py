"""A stage over several devices (``--gpus``): one child process per device (``spawn``, the device
chosen in the child before anything touches it), each running :func:`run.run_here` on its
deterministic shard into
its own resumable shard store; then one merge. A rerun after a failure resumes every shard.

Children get plain values (the configuration as a mapping, the data root as a path) and rebuild
the configuration the one way (``config.config_from_mapping``), so a child imports a stage's heavy
modules (torch) only after its device is set.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from typing import Any, Callable

from ..catalog import Dataset, open_dataset
from ..core.config import config_from_mapping, config_to_mapping
from ..core.errors import ConfigError, PseudolabelError
from ..core.output_root import point_current
from ..stages import Stage, get_stage
from ..store.index import StoreIndex
from .identity import resolve_target
from .merge import merge_shards
from .options import RunOptions
from .summary import RunSummary


def use_device(device: str) -> str:
    """Make this process see only ``device`` (a GPU id, or ``cpu``), before torch initialises CUDA,
    so the GPU is the process's ``cuda`` device; returns the ``--device`` of its run."""
    if device == "cpu":
        return "cpu"
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    return "cuda"


def where(device: str) -> str:
    return "the CPU" if device == "cpu" else f"GPU {device}"


def _child(k: int, device: str, queue, stage_name: str, mapping: dict[str, Any], data: tuple, split: str,
           cache: str, options: RunOptions, progress: bool) -> None:
    """Process ``k`` on ``device``: its shard (or a retry) through ``run_here``; the summary or
    the error message goes back through ``queue``."""
    spec = use_device(device)
    from .run import run_here
    shard = options.shard
    prefix = f"shard {shard[0]}/{shard[1]}: " if shard else ""
    try:
        stage = get_stage(stage_name)
        config = config_from_mapping(stage.config_class, mapping)
        summary = run_here(stage, config, open_dataset(*data), split, cache, options.replace(device=spec),
                           progress=progress, log=lambda line: print(prefix + line, file=sys.stderr, flush=True))
        queue.put((k, summary, None))
    except PseudolabelError as exc:
        queue.put((k, None, str(exc)))
    except KeyboardInterrupt:
        queue.put((k, None, "interrupted"))


def _spawn(jobs: list[tuple[str, RunOptions]], stage: Stage, config: Any, dataset: Dataset, split: str, cache,
           progress: bool) -> list[tuple[RunSummary | None, str | None]]:
    """Run each ``(device, options)`` in its own spawned process and wait for all;
    ``(summary, None)`` or ``(None, error)`` for each, in order."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()
    mapping = config_to_mapping(config)
    data = (str(dataset.root), dataset.max_objects, dataset.annotation_file(split))
    procs = [ctx.Process(target=_child, args=(k, device, queue, stage.name, mapping, data, split, str(cache), options,
                                              progress)) for k, (device, options) in enumerate(jobs)]
    for p in procs:
        p.start()
    results: dict[int, tuple] = {}
    while len(results) < len(procs):                 # read while they run: a full pipe would block them
        if not queue.empty():
            k, summary, error = queue.get()
            results[k] = (summary, error)
        elif not any(p.is_alive() for k, p in enumerate(procs) if k not in results):
            if queue.empty():                          # the rest died without a word
                break
        else:
            time.sleep(0.05)
    for p in procs:
        p.join()
    return [results.get(k, (None, f"the process on {where(device)} exited with code {p.exitcode}"))
            for k, ((device, _), p) in enumerate(zip(jobs, procs))]


def run_on_devices(stage: Stage, config: Any, dataset: Dataset, split: str, cache: str | os.PathLike,
                   options: RunOptions, *, progress: bool = True,
                   log: Callable[[str], None] = lambda s: None) -> RunSummary:
    """Shard k of n runs in its own process on device k of ``options.gpus``; then the shards are
    merged into the stage's store. ``retry_failed`` on a finished store redoes its failed images
    in one process on the first device (failures are few; see ``run.run``)."""
    devices = list(options.gpus)
    n = len(devices)
    child = options.replace(gpus=())
    target = resolve_target(stage.name, config, dataset, split, cache)
    start = time.perf_counter()
    if target.store.exists() and options.retry_failed:
        log(f"{stage.name} [{split}]: failed images of {target.store} on {where(devices[0])}")
        ((summary, error),) = _spawn([(devices[0], child)], stage, config, dataset, split, cache, progress)
        if error:
            raise ConfigError(f"retrying the failed images of {target.store} failed: {error}")
        return summary
    if target.store.exists() and not options.force:
        point_current(target.current, target.store)
        index = StoreIndex.open(target.store)
        return RunSummary(stage.name, split, target.store, images=len(index.ids), done=index.num_done,
                          failed=index.num_failed, nothing_to_do=True, current=target.current, output=stage.output)
    for k, device in enumerate(devices):
        log(f"shard {k}/{n} on {where(device)}")
    results = _spawn([(device, child.replace(shard=(k, n), retry_failed=False)) for k, device in enumerate(devices)],
                     stage, config, dataset, split, cache, progress)
    bad = [f"{k}/{n} ({error})" for k, (_, error) in enumerate(results) if error]
    if bad:
        raise ConfigError(f"shard(s) {', '.join(bad)} of {stage.name} failed; rerun the same command to resume them")
    store = merge_shards(stage.name, dataset, split, cache, n, key=target.identity.key, force=options.force, log=log)
    index = StoreIndex.open(store)
    shards = [summary for summary, _ in results]
    return RunSummary(stage.name, split, store, images=len(index.ids), done=index.num_done, failed=index.num_failed,
                      processed=sum(s.processed for s in shards), resumed=sum(s.resumed for s in shards),
                      objects=sum(s.objects for s in shards), wall_s=time.perf_counter() - start,
                      counts={k: sum(s.counts.get(k, 0) for s in shards) for s in shards for k in s.counts},
                      oriented={i: v for s in shards for i, v in s.oriented.items()},
                      current=target.current, output=stage.output)
