"""One command per registered stage: ``pseudolabel <stage> --split S`` with the run options of
:class:`~pseudolabel.runner.options.RunOptions` (``--jobs``, ``--force``, ``--retry-failed``,
``--on-error``, ``--shard``, ``--backend``, ``--scheduler``; ``--device`` and ``--gpus`` for stages
that run a network) and the stage's own configuration options. The group builds a stage's command only when it is
asked for (``Group.get_command``), so ``pseudolabel grabcut`` does not import what
``proposals`` needs. ``pseudolabel merge`` joins shard stores."""
from __future__ import annotations

import click

from ..runner import merge_shards, run
from ..runner.options import fields_for
from ..stages import STAGES, Stage
from . import cli
from .common import (split_of, build_config, cache_option, config_options, dataset_from, data_root_option,
                     logger, parse_run_options, progress_enabled, run_options, split_option)


def make_command(stage: Stage) -> click.Command:
    @click.pass_context
    def command(ctx, data_root, cache, split, **values):
        options = parse_run_options({f.name: values.pop(f.name) for f in fields_for("stage") if f.name in values})
        config = build_config(stage.config_class, values)
        log = logger(ctx)
        dataset = dataset_from(data_root)
        summary = run(stage.name, config, dataset, split_of(dataset, split), cache, options,
                      progress=progress_enabled(ctx), log=log)
        for line in summary.lines():
            log(line)

    command.__doc__ = stage.help
    command = config_options(stage.config_class)(command)
    command = run_options("stage", network=stage.uses_device)(command)
    for option in reversed([data_root_option, cache_option, split_option]):
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
    dataset = dataset_from(data_root)
    merge_shards(stage, dataset, split_of(dataset, split), cache, shards, key=key, force=force,
                 progress=progress_enabled(ctx), log=logger(ctx))
