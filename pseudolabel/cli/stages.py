"""One command per registered stage: ``pseudolabel <stage> --split S [--jobs N] [--force]
[--on-error fail|skip]`` plus the stage's own configuration options. The group builds a stage's
command only when it is asked for (``Group.get_command``), so ``pseudolabel grabcut`` does not
import what ``proposals`` needs."""
from __future__ import annotations

import click

from ..runner import ON_ERROR, run_stage
from ..stages import Stage
from .common import (build_config, cache_option, config_options, dataset_from, data_root_option,
                     logger, progress_enabled, split_option)


def make_command(stage: Stage) -> click.Command:
    @click.pass_context
    def command(ctx, data_root, cache, split, jobs, force, on_error, **values):
        config = build_config(stage.config_class, values)
        dataset = dataset_from(data_root)
        log = logger(ctx)
        summary = run_stage(stage.name, dataset, split, cache, config=config, jobs=jobs, force=force,
                            on_error=on_error, progress=progress_enabled(ctx), log=log)
        for line in summary.lines():
            log(line)

    command.__doc__ = stage.help
    command = config_options(stage.config_class)(command)
    for option in reversed([
        data_root_option, cache_option, split_option,
        click.option("--jobs", "-j", type=click.IntRange(min=0), default=1,
                     help="Worker processes (images in parallel, one core each); 0 = all cores."),
        click.option("--force", is_flag=True, help="Discard any existing or partial store and start over."),
        click.option("--on-error", type=click.Choice(ON_ERROR), default="fail",
                     help="On bad input: stop with a message naming the file, or skip the image "
                          "and record it in the store as failed."),
    ]):
        command = option(command)
    return click.command(stage.name, help=stage.help)(command)
