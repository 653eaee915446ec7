"""The runner's one entry point: :func:`run` a stage over a split with its run options (the CLI,
recipes, the demo and tests call it). It checks the run options against the stage, opens the
executor's backend and runs in this process (``run.py``), or over several devices (``gpus.py``:
one spawned run per device, then a merge)."""
from __future__ import annotations

import os
from typing import Any, Callable

from ..catalog import Dataset
from ..stages import get_stage
from .executors import backend_context
from .gpus import run_on_devices
from .options import RunOptions
from .run import run_here
from .summary import RunSummary

Log = Callable[[str], None]


def run(stage_name: str, config: Any, dataset: Dataset, split: str, root: str | os.PathLike,
        options: RunOptions = RunOptions(), *, progress: bool = True, log: Log = lambda s: None) -> RunSummary:
    """Run one stage over a split into ``<root>/<dataset>/<split>/<stage>/<key>.h5`` (``key``: the
    cache key of its identity), then point ``<stage>.h5`` (the store every reader opens) at it.
    ``config`` None: the stage's defaults.

    ``options.shard=(i, n)`` runs only the split's images ``i, i + n, i + 2n, ...`` (a deterministic
    shard: every image in exactly one of the n) into ``<stage>/<key>.shard-<i>-of-<n>.h5``;
    ``merge_shards`` joins the n shard stores into the stage's store. ``options.gpus`` runs one
    spawned process per device over such shards, then merges them.

    Resumes an interrupted run (only unfinished images are redone), says there is nothing to do
    when the store is complete for the same configuration, and starts over with ``force``.
    ``retry_failed`` redoes only the images recorded as failed in the finished store and keeps
    every other image as it is (upstream stores may have been retried meanwhile; their
    configuration must be the same). ``on_error="fail"`` stops at the first bad image with a
    :class:`DataError` naming the file (everything finished so far stays in the journal);
    ``"skip"`` records it as failed and goes on. ``device`` (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``) is where a stage that runs a network runs it; such a stage has one worker.
    """
    stage = get_stage(stage_name)
    config = config if config is not None else stage.config_class()
    options = options.for_stage(stage)
    if options.gpus:
        return run_on_devices(stage, config, dataset, split, root, options, progress=progress, log=log)
    with backend_context(options.backend, options.scheduler):
        return run_here(stage, config, dataset, split, root, options, progress=progress, log=log)
