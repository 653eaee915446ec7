"""One run of one stage over a split in this process (and its workers): plan -> map -> commit.

    plan    what is done, what is left, in which units          (plan.py)
    map     the units through an executor: loop, loky, dask      (executors.py, work.py)
    commit  each outcome to the journal, then one finalize       (commit.py)

Callers go through :func:`pseudolabel.runner.run` (``entry.py``), which chooses this or one run
per device (``gpus.py``).
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from ..catalog import Dataset
from ..core.errors import ConfigError, Notice
from ..core.output_root import point_current
from ..core.progress import Progress
from ..models.device import describe as describe_device, resolve as resolve_device
from ..stages import Stage, StageContext
from ..store.journal import run_lock
from .commit import Commit
from .executors import make_executor
from .identity import Target, resolve_target
from .options import RunOptions
from .plan import Plan, make_plan
from .summary import RunSummary
from .work import close_upstream, process_unit

Log = Callable[[str], None]


def run_here(stage: Stage, config: Any, dataset: Dataset, split: str, root: str | os.PathLike,
             options: RunOptions, *, progress: bool = True, log: Log = lambda s: None) -> RunSummary:
    """:func:`run` in this process (and its workers), with the backend already open."""
    device = None
    jobs = options.resolve_jobs(log)
    if stage.uses_device:
        device = resolve_device(options.device)
        if jobs != 1:
            log(f"{stage.name} runs one worker per device (--jobs is for CPU stages; --gpus for several GPUs)")
            jobs = 1
    if stage.voc_only and not dataset.labels.is_voc:
        raise ConfigError(f"{stage.name} explains a detector of PASCAL VOC's 20 classes; the classes of {dataset.root} "
                          f"({dataset.kind}: {', '.join(dataset.labels.names[1:6])}{', ...' if dataset.labels.num_classes > 6 else ''}) "
                          f"are others")
    target = resolve_target(stage.name, config, dataset, split, root, options.shard)
    stage.check(config)
    records = dataset.records(split)
    if target.store.exists() and not (options.force or options.retry_failed):
        # a finished store is only read (it was renamed into place whole): no lock, so a store on a
        # read-only file system still says there is nothing to do
        plan = make_plan(stage, config, target, records, shard=options.shard)
        summary = _summary(stage, split, target, plan)
    else:
        with run_lock(target.store):
            plan = make_plan(stage, config, target, records, shard=options.shard, force=options.force,
                             retry_failed=options.retry_failed)
            summary = _summary(stage, split, target, plan)
            if not plan.nothing_to_do:
                _execute(stage, config, plan, summary, jobs=jobs, options=options, progress=progress, log=log,
                         device=device)
    if target.current is not None:
        point_current(target.current, target.store)
    return summary


def dataset_labels(plan: Plan):
    """The label space of the data a plan's store is made from."""
    return plan.target.identity.labels


def _summary(stage: Stage, split: str, target: Target, plan: Plan) -> RunSummary:
    return RunSummary(stage=stage.name, split=split, store=target.store, images=len(plan.ids), output=stage.output,
                      current=target.current, nothing_to_do=plan.nothing_to_do, done=plan.done, failed=plan.failed,
                      resumed=plan.resumed, retried=plan.retried)


def _execute(stage: Stage, config: Any, plan: Plan, summary: RunSummary, *, jobs: int, options: RunOptions,
             progress: bool, log: Log, device: str | None = None) -> None:
    """Map the plan's units through an executor and commit every outcome, then finalize."""
    if plan.previous is not None:
        log(f"retrying the {plan.retried} failed image(s) of {plan.target.store}; "
            f"the {plan.previous.num_done} done are kept")
    commit = Commit(plan, summary, on_error=options.on_error, output=stage.output, log=log)
    where = None
    if device is not None:
        where = describe_device(device)
        log(f"{stage.name} [{summary.split}] on {where}")
    commit.start(jobs, options.backend, where)
    for name, problem in plan.dropped.items():
        log(Notice(f"{plan.journal.dir / name}: damaged ({problem}); dropped, "
                   + ("written again" if name == "manifest.json" else "its image is redone")))
    if plan.resumed:
        log(f"resuming {plan.target.store}: {plan.resumed} of {plan.retried or len(plan.ids)} images already finished")
    commit.record_bad()
    start = time.perf_counter()
    executor = make_executor(options.backend, jobs, len(plan.units))
    units = plan.units if not executor.parallel else sorted(
        plan.units, key=lambda u: (-sum(len(r.objects) for r in u), -sum(r.width * r.height for r in u)))
    bar = Progress(sum(len(u) for u in plan.units), f"{stage.name} [{summary.split}]", enabled=progress)
    context = StageContext(device=device or "cpu", labels=dataset_labels(plan))
    try:
        work = ((stage.name, config, unit, plan.target.inputs, plan.batched, context) for unit in units)
        for outcomes in executor.map(process_unit, work):
            for outcome in outcomes:
                commit.add(outcome)
                bar.update()
    finally:
        bar.close()
        close_upstream()                      # what a serial run opened in this process
    commit.finish(time.perf_counter() - start)
    summary.wall_s = time.perf_counter() - start
