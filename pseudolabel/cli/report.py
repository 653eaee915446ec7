"""``pseudolabel report``: a static HTML page of stages' scores, flags and overlays."""
from __future__ import annotations

import click

from . import cli
from .common import cache_option, dataset_from, data_root_option, logger, progress_enabled, split_option


@cli.command("report")
@data_root_option
@cache_option
@split_option
@click.option("--stages", default="grabcut,refine,fuse",
              help="Comma-separated stages whose current stores to show, side by side; examples are "
                   "chosen by the last one's per-image mIoU.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder of the page [default: <cache>/<dataset>/<split>/report].")
@click.option("--examples", type=click.IntRange(min=1, max=50), default=3,
              help="Images shown in each of worst, median and best.")
@click.pass_context
def report_command(ctx, data_root, cache, split, stages, out, examples):
    """Write OUT/index.html: per-class IoU of each stage side by side, coverage, filling rates,
    guard/fallback counts, and overlays of the worst, median and best images (PNGs beside the
    page; it opens from disk, no server)."""
    from ..report import build_report

    dataset = dataset_from(data_root)
    names = [s.strip() for s in stages.split(",") if s.strip()]
    from ..stages import STAGES
    labels = [s for s in STAGES if STAGES[s].output == "labels"]
    unknown = [s for s in names if s not in labels]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: not a stage that makes labels; "
                                 f"choose from {', '.join(labels)}", param_hint="--stages")
    build_report(dataset, split, cache, names, out, examples=examples, progress=progress_enabled(ctx),
                 log=logger(ctx))
