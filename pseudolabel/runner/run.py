"""One run of one stage over a split: plan -> map -> commit.

    plan    what is done, what is left, in which units          (plan.py)
    map     the units through an executor: loop, loky, dask      (executors.py, work.py)
    commit  each outcome to the journal, then one finalize       (commit.py)
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from ..catalog import Dataset
from ..layout import point_current
from ..progress import Progress
from ..stages import Stage, get_stage
from ..store.journal import run_lock
from .commit import Commit
from .executors import make_executor, resolve_jobs
from .identity import Target, resolve_target
from .plan import Plan, make_plan
from .summary import RunSummary
from .work import close_upstream, process_unit

ON_ERROR = ("fail", "skip")


def run_stage(stage_name: str, dataset: Dataset, split: str, cache: str | os.PathLike, *,
              config: Any = None, jobs: int = 1, force: bool = False, on_error: str = "fail",
              progress: bool = True, log: Callable[[str], None] = lambda s: None,
              shard: tuple[int, int] | None = None, backend: str = "loky",
              retry_failed: bool = False, device: str = "auto") -> RunSummary:
    """Run one stage over a split into ``<cache>/<dataset>/<split>/<stage>/<key>.h5`` (``key``:
    the cache key of its identity), then point ``<stage>.h5`` (the store every reader opens) at it.

    ``shard=(i, n)`` runs only the split's images ``i, i + n, i + 2n, ...`` (a deterministic
    shard: every image in exactly one of the n) into ``<stage>/<key>.shard-<i>-of-<n>.h5``;
    ``merge_shards`` joins the n shard stores into the stage's store.

    Resumes an interrupted run (only unfinished images are redone), says there is nothing to
    do when the store is complete for the same configuration, and starts over with
    ``force``. ``retry_failed`` redoes only the images recorded as failed in the finished store
    and keeps every other image as it is (upstream stores may have been retried meanwhile; their
    configuration must be the same). ``on_error="fail"`` stops at the first bad image with a
    :class:`DataError` naming the file (everything finished so far stays in the journal);
    ``"skip"`` records it as failed and goes on. ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``)
    is where a stage that runs a network runs it; such a stage has one worker (``--jobs`` is for CPU
    stages).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
    if force and retry_failed:
        raise ValueError("force recomputes every image and retry_failed only the failed ones: pass one")
    if shard is not None:
        check_shard(shard)
    stage = get_stage(stage_name)
    config = config if config is not None else stage.config_class()
    if stage.uses_device:
        from .. import device as devices
        device = devices.resolve(device)
        devices.use(device)                          # its check (loading weights) runs here, on it
        if jobs != 1:
            log(f"{stage_name} runs one worker per device (--jobs is for CPU stages; --gpus for several GPUs)")
            jobs = 1
    else:
        device = None
    jobs = resolve_jobs(jobs, log)
    make_executor(backend, jobs, 0)                      # an unknown backend fails before any work
    target = resolve_target(stage_name, config, dataset, split, cache, shard)
    stage.check(config)
    with run_lock(target.store):
        plan = make_plan(stage, config, target, dataset.records(split), shard=shard, force=force,
                         retry_failed=retry_failed)
        summary = _summary(stage, split, target, plan)
        if not plan.nothing_to_do:
            _execute(stage, config, plan, summary, jobs=jobs, backend=backend, on_error=on_error,
                     progress=progress, log=log, device=device)
    if target.current is not None:
        point_current(target.current, target.store)
    return summary


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
    return i, n


def _summary(stage: Stage, split: str, target: Target, plan: Plan) -> RunSummary:
    return RunSummary(stage=stage.name, split=split, store=target.store, images=len(plan.ids), output=stage.output,
                      current=target.current, nothing_to_do=plan.nothing_to_do, done=plan.done, failed=plan.failed,
                      resumed=plan.resumed, retried=plan.retried)


def _execute(stage: Stage, config: Any, plan: Plan, summary: RunSummary, *, jobs: int, backend: str,
             on_error: str, progress: bool, log: Callable[[str], None], device: str | None = None) -> None:
    """Map the plan's units through an executor and commit every outcome, then finalize."""
    if plan.previous is not None:
        log(f"retrying the {plan.retried} failed image(s) of {plan.target.store}; "
            f"the {plan.previous.num_done} done are kept")
    commit = Commit(plan, summary, on_error=on_error, output=stage.output, log=log)
    where = None
    if device is not None:
        from .. import device as devices
        where = devices.describe(device)
        log(f"{stage.name} [{summary.split}] on {where}")
    commit.start(jobs, backend, where)
    if plan.resumed:
        log(f"resuming {plan.target.store}: {plan.resumed} of {plan.retried or len(plan.ids)} images already finished")
    commit.record_bad()
    start = time.perf_counter()
    executor = make_executor(backend, jobs, len(plan.units))
    units = plan.units if not executor.parallel else sorted(
        plan.units, key=lambda u: (-sum(len(r.objects) for r in u), -sum(r.width * r.height for r in u)))
    bar = Progress(sum(len(u) for u in plan.units), f"{stage.name} [{summary.split}]", enabled=progress)
    try:
        work = ((stage.name, config, unit, plan.target.inputs, plan.batched, device) for unit in units)
        for outcomes in executor.map(process_unit, work):
            for outcome in outcomes:
                commit.add(outcome)
                bar.update()
    finally:
        bar.close()
        close_upstream()                      # what a serial run opened in this process
    commit.finish(time.perf_counter() - start)
    summary.wall_s = time.perf_counter() - start
