"""``pseudolabel run RECIPE``: every step of a recipe (``pipelines/*.toml``) in order."""
from __future__ import annotations

import json

import click

from ..runner import ON_ERROR
from . import cli
from .common import cache_option, logger, progress_enabled
from .stages import backend_option, scheduler_option


@cli.command("run")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--data-root", envvar="PSEUDOLABEL_DATA", type=click.Path(file_okay=False), default=None,
              help="Dataset folder [default: the recipe's data_root]. [env: PSEUDOLABEL_DATA]")
@cache_option
@click.option("--split", default=None, help="Split [default: the recipe's split, else train].")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=None,
              help="Worker processes for CPU stages [default: the recipe's jobs, else 1]; 0 = all cores.")
@click.option("--set", "assignments", multiple=True, metavar="STAGE.OPTION=VALUE",
              help="Override one stage option of the recipe (repeatable), e.g. grabcut.iterations=3.")
@click.option("--force", is_flag=True, help="Recompute every step even when its output is up to date.")
@click.option("--retry-failed", is_flag=True,
              help="Steps whose finished store has failed images redo only those (after fixing their "
                   "files); the other images are kept.")
@click.option("--on-error", type=click.Choice(ON_ERROR), default="fail",
              help="On bad input: stop naming the file, or skip the image and record it as failed.")
@backend_option
@scheduler_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of the steps (ran / skipped).")
@click.pass_context
def run_command(ctx, recipe, data_root, cache, split, jobs, assignments, force, retry_failed, on_error, backend,
                scheduler, as_json):
    """Run the steps of RECIPE in order. Each stage's store is keyed by its configuration and
    inputs, so a second run has nothing to do and a changed option reruns only the steps it
    affects (that stage and those after it that read it)."""
    if force and retry_failed:
        raise click.UsageError("--force recomputes every step and --retry-failed only failed images: pass one")
    from ..recipe import load_recipe, parse_set, run_recipe
    loaded = load_recipe(recipe, parse_set(assignments))
    from ..runner import backend_context
    with backend_context(backend, scheduler):
        steps = run_recipe(loaded, data_root=data_root, cache=cache, split=split, jobs=jobs, force=force,
                           on_error=on_error, progress=progress_enabled(ctx), log=logger(ctx), backend=backend,
                           retry_failed=retry_failed)
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in steps], indent=2))
