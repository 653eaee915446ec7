"""One command per registered stage: ``pseudolabel <stage> --split S [--jobs N]
[--force | --retry-failed] [--on-error fail|skip] [--shard I/N]`` plus the stage's own configuration options (and
``--gpus`` for stages that run a network). The group builds a stage's command only when it is
asked for (``Group.get_command``), so ``pseudolabel grabcut`` does not import what
``proposals`` needs. ``pseudolabel merge`` joins shard stores."""
from __future__ import annotations

import click

from ..errors import ConfigError
from ..runner import BACKENDS, ON_ERROR, backend_context, check_devices, merge_shards, run_on_devices, run_stage
from ..stages import STAGES, Stage
from . import cli
from .common import (build_config, cache_option, config_options, dataset_from, data_root_option,
                     logger, progress_enabled, split_option)


def parse_shard(ctx, param, value):
    if value is None:
        return None
    try:
        i, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"expected I/N such as 0/4, got {value!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise click.BadParameter(f"need 0 <= I < N, got {value!r}")
    return i, n


def parse_gpus(ctx, param, value):
    if value is None:
        return None
    try:
        return check_devices([v.strip() for v in value.split(",") if v.strip()])
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


backend_option = click.option(
    "--backend", type=click.Choice(BACKENDS), default="loky",
    help="Where images are processed: loky = --jobs local processes; dask = every worker of the "
         "dask.distributed cluster at --scheduler (this process still writes the store).")
scheduler_option = click.option(
    "--scheduler", default=None, metavar="ADDRESS",
    help="Address of the dask scheduler for --backend dask, e.g. tcp://10.0.0.5:8786.")


def make_command(stage: Stage) -> click.Command:
    @click.pass_context
    def command(ctx, data_root, cache, split, jobs, force, retry_failed, on_error, shard, backend, scheduler,
                gpus=None, device=None, **values):
        if force and retry_failed:
            raise click.UsageError("--force recomputes every image and --retry-failed only the failed ones: "
                                   "pass one of them")
        config = build_config(stage.config_class, values)
        dataset = dataset_from(data_root)
        log = logger(ctx)
        if gpus:
            if shard is not None:
                raise click.UsageError("--gpus makes its own shards; drop --shard")
            if device not in (None, "auto"):
                raise click.UsageError("--gpus chooses the device of each process; drop --device")
            summary = run_on_devices(stage.name, config, dataset, split, cache, gpus, jobs=jobs, force=force,
                                     on_error=on_error, progress=progress_enabled(ctx), log=log,
                                     retry_failed=retry_failed)
            for line in summary.lines():
                log(line)
            return
        with backend_context(backend, scheduler):
            summary = run_stage(stage.name, dataset, split, cache, config=config, jobs=jobs, force=force,
                                on_error=on_error, progress=progress_enabled(ctx), log=log, shard=shard,
                                backend=backend, retry_failed=retry_failed, device=device or "auto")
        for line in summary.lines():
            log(line)

    command.__doc__ = stage.help
    command = config_options(stage.config_class)(command)
    options = [
        data_root_option, cache_option, split_option,
        click.option("--jobs", "-j", type=click.IntRange(min=0), default=1,
                     help="Worker processes (images in parallel, one core each); 0 = all cores."),
        click.option("--force", is_flag=True, help="Discard this configuration's store or interrupted run and start over."),
        click.option("--retry-failed", is_flag=True,
                     help="Redo only the images recorded as failed in this configuration's finished store "
                          "(e.g. after fixing their files); every other image is kept as it is."),
        click.option("--on-error", type=click.Choice(ON_ERROR), default="fail",
                     help="On bad input: stop with a message naming the file, or skip the image "
                          "and record it in the store as failed."),
        backend_option, scheduler_option,
        click.option("--shard", callback=parse_shard, default=None, metavar="I/N",
                     help="Only images I, I+N, I+2N, ... of the split, into <stage>/<key>.shard-I-of-N.h5 "
                          "(one machine per shard); `pseudolabel merge` joins them."),
    ]
    if stage.uses_device:
        options.append(click.option(
            "--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
            help="Where the network runs: auto = CUDA when torch sees a GPU (a SLURM job's --gres GPU "
                 "included), else the CPU; said at the start and kept in the store's run log. One "
                 "worker per device: --jobs is for CPU stages."))
        options.append(click.option(
            "--gpus", callback=parse_gpus, default=None, metavar="IDS",
            help="GPU ids, e.g. 0,1: one process per GPU over deterministic shards, merged at the "
                 "end; rerunning resumes ('cpu' entries run a shard on the CPU)."))
    for option in reversed(options):
        command = option(command)
    return click.command(stage.name, help=stage.help)(command)


@cli.command("merge")
@data_root_option
@cache_option
@split_option
@click.option("--stage", required=True, help="Stage whose shard stores to merge.")
@click.option("--shards", type=click.IntRange(min=1), required=True, help="N of the --shard I/N runs.")
@click.option("--key", default=None, help="Cache key of the configuration whose shards to merge "
              "(needed only when shards of several configurations are present).")
@click.option("--force", is_flag=True, help="Replace an existing store with the merged shards.")
@click.pass_context
def merge(ctx, data_root, cache, split, stage, shards, key, force):
    """Join the shard stores <stage>/<key>.shard-I-of-N.h5 (from --shard I/N runs) into
    <stage>/<key>.h5 and make it the current <stage>.h5."""
    if stage not in STAGES:
        raise click.BadParameter(f"unknown stage {stage!r}; known: {', '.join(STAGES)}", param_hint="--stage")
    merge_shards(stage, dataset_from(data_root), split, cache, shards, key=key, force=force,
                 progress=progress_enabled(ctx), log=logger(ctx))
