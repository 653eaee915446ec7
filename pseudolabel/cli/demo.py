"""``pseudolabel demo``: the pipeline on scikit-image's bundled photos, no dataset needed."""
from __future__ import annotations

import click

from ..app.demo import run_demo
from . import cli
from .common import cache_option, logger, parse_run_options, progress_enabled


@cli.command("demo")
@cache_option
@click.option("--jobs", "-j", type=int, default=1, help="Worker processes; 0 = all cores.")
@click.option("--force", is_flag=True, help="Recompute the demo stores even if they are complete.")
@click.pass_context
def demo_command(ctx, cache, jobs, force):
    """Build a 4-photo VOC dataset from scikit-image's bundled photos (a person, a grey-scale
    person, a cat, a motorcycle scene), run every stage, export PNGs and draw
    <cache>/demo/overlay.png. No network, no dataset."""
    options = parse_run_options({"jobs": jobs, "force": force})
    run_demo(cache, options, progress=progress_enabled(ctx), log=logger(ctx))
