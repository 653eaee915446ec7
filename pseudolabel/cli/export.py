"""``pseudolabel export``: store to VOC-style PNGs."""
from __future__ import annotations

import click

from ..export import FORMATS, export_png
from ..layout import OutputRoot
from ..stages import STAGES
from . import cli
from .common import open_store, cache_option, dataset_from, data_root_option, logger, progress_enabled, split_option


@cli.command("export")
@data_root_option
@cache_option
@split_option
@click.option("--stage", type=click.Choice(list(STAGES)), default="boxes", help="Stage whose store to export.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="png",
              help="png: palette PNGs like VOC's SegmentationClass and SegmentationObject.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: <cache>/<dataset>/<split>/export/<stage>].")
@click.option("--instances/--no-instances", default=True, help="Also write SegmentationObject PNGs.")
@click.pass_context
def export_command(ctx, data_root, cache, split, stage, fmt, out, instances):
    """Write a store's labels as palette PNGs: OUT/SegmentationClass/<id>.png (0..20, 255)
    and OUT/SegmentationObject/<id>.png (object k+1, 0 background, 255 ignore)."""
    dataset = dataset_from(data_root)
    store = open_store(cache, dataset, split, stage)
    out = out or OutputRoot(cache).export_dir(dataset.name, split, stage)
    n = export_png(store, out, instances=instances, progress=progress_enabled(ctx))
    logger(ctx)(f"exported {n} images to {out}")
