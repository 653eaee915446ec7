"""A stage over several devices: one child process per device (``spawn``, the device chosen in the
child before anything touches it), each running :func:`run_stage` on its deterministic shard into
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
from ..config import config_from_mapping, config_to_mapping
from ..errors import ConfigError, PseudolabelError
from ..layout import point_current
from ..stages import get_stage
from ..store.index import StoreIndex
from .identity import resolve_target
from .merge import merge_shards
from .summary import RunSummary


def check_devices(devices: list[str]) -> list[str]:
    if not devices or any(not (d.isdigit() or d == "cpu") for d in devices):
        raise ConfigError(f"expected GPU ids such as 0,1 (or 'cpu' entries), got {','.join(devices)!r}")
    return devices


def use_device(device: str) -> str:
    """Make this process see only ``device`` (a GPU id, or ``cpu``), before torch initialises CUDA,
    so the GPU is the process's ``cuda`` device; returns the ``--device`` of its run."""
    if device == "cpu":
        return "cpu"
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    return "cuda"


def where(device: str) -> str:
    return "the CPU" if device == "cpu" else f"GPU {device}"


def _child(k: int, device: str, queue, stage_name: str, mapping: dict[str, Any], data_root: str, split: str,
           cache: str, options: dict[str, Any]) -> None:
    """Process ``k`` on ``device``: its shard (or a retry) through ``run_stage``; the summary or
    the error message goes back through ``queue``."""
    spec = use_device(device)
    from .run import run_stage
    shard = options.get("shard")
    prefix = f"shard {shard[0]}/{shard[1]}: " if shard else ""
    try:
        config = config_from_mapping(get_stage(stage_name).config_class, mapping)
        summary = run_stage(stage_name, open_dataset(data_root), split, cache, config=config, device=spec,
                            log=lambda line: print(prefix + line, file=sys.stderr, flush=True), **options)
        queue.put((k, summary, None))
    except PseudolabelError as exc:
        queue.put((k, None, str(exc)))
    except KeyboardInterrupt:
        queue.put((k, None, "interrupted"))


def _spawn(jobs: list[tuple[str, dict[str, Any]]], stage_name: str, config: Any, dataset: Dataset, split: str,
           cache) -> list[tuple[RunSummary | None, str | None]]:
    """Run each ``(device, run_stage options)`` in its own spawned process and wait for all;
    ``(summary, None)`` or ``(None, error)`` for each, in order."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()
    mapping = config_to_mapping(config)
    procs = [ctx.Process(target=_child, args=(k, device, queue, stage_name, mapping, str(dataset.root), split,
                                              str(cache), options)) for k, (device, options) in enumerate(jobs)]
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


def run_on_devices(stage_name: str, config: Any, dataset: Dataset, split: str, cache: str | os.PathLike,
                   devices: list[str], *, jobs: int = 1, force: bool = False, on_error: str = "fail",
                   progress: bool = True, log: Callable[[str], None] = lambda s: None,
                   retry_failed: bool = False) -> RunSummary:
    """Shard k of n runs in its own process on device k; then the shards are merged into the
    stage's store. ``retry_failed`` on a finished store redoes its failed images in one process
    on the first device (failures are few; see ``run_stage``)."""
    if force and retry_failed:
        raise ValueError("force recomputes every image and retry_failed only the failed ones: pass one")
    devices = check_devices(list(devices))
    n = len(devices)
    target = resolve_target(stage_name, config, dataset, split, cache)
    common = {"jobs": jobs, "on_error": on_error, "progress": progress}
    start = time.perf_counter()
    if target.store.exists() and retry_failed:
        log(f"{stage_name} [{split}]: failed images of {target.store} on {where(devices[0])}")
        ((summary, error),) = _spawn([(devices[0], {**common, "retry_failed": True})], stage_name, config,
                                        dataset, split, cache)
        if error:
            raise ConfigError(f"retrying the failed images of {target.store} failed: {error}")
        return summary
    if target.store.exists() and not force:
        point_current(target.current, target.store)
        index = StoreIndex.open(target.store)
        return RunSummary(stage_name, split, target.store, images=len(index.ids), done=index.num_done,
                          failed=index.num_failed, nothing_to_do=True, current=target.current,
                          output=get_stage(stage_name).output)
    for k, device in enumerate(devices):
        log(f"shard {k}/{n} on {where(device)}")
    results = _spawn([(device, {**common, "force": force, "shard": (k, n)}) for k, device in enumerate(devices)],
                     stage_name, config, dataset, split, cache)
    bad = [f"{k}/{n} ({error})" for k, (_, error) in enumerate(results) if error]
    if bad:
        raise ConfigError(f"shard(s) {', '.join(bad)} of {stage_name} failed; rerun the same command to resume them")
    store = merge_shards(stage_name, dataset, split, cache, n, key=target.identity.key, force=force, log=log)
    index = StoreIndex.open(store)
    shards = [summary for summary, _ in results]
    return RunSummary(stage_name, split, store, images=len(index.ids), done=index.num_done, failed=index.num_failed,
                      processed=sum(s.processed for s in shards), resumed=sum(s.resumed for s in shards),
                      objects=sum(s.objects for s in shards), wall_s=time.perf_counter() - start,
                      counts={k: sum(s.counts.get(k, 0) for s in shards) for s in shards for k in s.counts},
                      current=target.current, output=get_stage(stage_name).output)
