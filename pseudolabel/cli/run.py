"""``pseudolabel run RECIPE``: every step of a recipe (a TOML file, or a shipped recipe by name) in order."""
from __future__ import annotations

import json

import click

from . import cli
from .common import annotations_option, cache_option, dataset_from, logger, max_objects_option, parse_run_options, \
    progress_enabled, run_options


@cli.command("run")
@click.argument("recipe", required=False)
@click.option("--list", "list_recipes", is_flag=True, help="List the recipes shipped with pseudolabel and exit.")
@click.option("--data-root", envvar="PSEUDOLABEL_DATA", type=click.Path(file_okay=False), default=None,
              help="Dataset folder [default: the recipe's data_root]. [env: PSEUDOLABEL_DATA]")
@annotations_option
@max_objects_option
@cache_option
@click.option("--split", default=None, help="Split [default: the recipe's split, else train].")
@run_options("run", given_only=True)
@click.option("--set", "assignments", multiple=True, metavar="STAGE.OPTION=VALUE",
              help="Override one stage option of the recipe (repeatable), e.g. grabcut.iterations=3.")
@click.option("--exports", type=click.Path(file_okay=False), default=None,
              help="Folder that export steps' `out` folders are under [default: the output root, --cache]; "
                   "an export never writes anywhere else, nor inside the data root.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array of the steps (ran / skipped).")
@click.pass_context
def run_command(ctx, recipe, list_recipes, data_root, cache, split, assignments, exports, as_json, **options):
    """Run the steps of RECIPE in order: a recipe file, or the name of one shipped with
    pseudolabel (`pseudolabel run box2seg`; `--list` shows them). Each stage's store is keyed by
    its configuration and inputs, so a second run has nothing to do and a changed option reruns
    only the steps it affects (that stage and those after it that read it). Run options given here
    win over the recipe's; --device applies to the steps that run a network."""
    from ..app.recipe import load_recipe, parse_set, shipped_recipes
    if list_recipes:
        for name, description, path in shipped_recipes():
            click.echo(f"{name:<14} {description}  ({path})")
        return
    if recipe is None:
        raise click.UsageError("give a RECIPE (a .toml file or a shipped recipe's name), or --list")
    from ..app.run import run_recipe
    loaded = load_recipe(recipe, parse_set(assignments))
    given = {k: (v if v is not False else None) for k, v in options.items()}   # a flag left off: not given
    parse_run_options(given)                                                   # the command line's own rules
    steps = run_recipe(loaded, dataset_from(data_root or loaded.data_root), cache=cache, split=split, options=given,
                       exports=exports, progress=progress_enabled(ctx), log=logger(ctx))
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in steps], indent=2))
