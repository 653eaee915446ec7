"""``pseudolabel export``: a store to the files trainers read (VOC PNGs, COCO JSON, YOLO polygons)."""
from __future__ import annotations

import click

from ..core.output_root import OutputRoot
from ..export import FORMATS
from ..store import LabelStore
from . import cli
from .common import (split_of, cache_option, dataset_from, data_root_option, label_stages, logger, progress_enabled,
                     split_option, store_option, store_path)


@cli.command("export")
@data_root_option
@cache_option
@split_option
@click.option("--stage", type=click.Choice(label_stages()), default=None,
              help="Stage whose store to export [default: boxes; with --store, any stage's].")
@store_option("Export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="png",
              help="png: palette PNGs like VOC's SegmentationClass and SegmentationObject; "
                   "coco: OUT/instances_<split>.json, COCO instance segmentation with RLE masks; "
                   "yolo: OUT/labels/<split>/<id>.txt polygons, OUT/images/<split> links, OUT/data.yaml.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: <cache>/<dataset>/<split>/export/<stage> for png, "
                   "<stage>-coco or <stage>-yolo beside it].")
@click.option("--instances/--no-instances", default=True, help="png: also write SegmentationObject PNGs.")
@click.pass_context
def export_command(ctx, data_root, cache, split, stage, store, fmt, out, instances):
    """Write a store's labels in the format a trainer reads.

    png: OUT/SegmentationClass/<id>.png (0..20, 255) and OUT/SegmentationObject/<id>.png (object
    k+1, 0 background, 255 ignore). coco: one JSON per split, one annotation per object (empty
    masks kept with area 0), failed images listed under "pseudolabel". yolo: one polygon line per
    part of each mask, holes filled. docs/EXPORT.md has the details.
    """
    from ..export import export_store

    dataset = dataset_from(data_root)
    split = split_of(dataset, split)
    store = LabelStore(store_path(cache, dataset, split, stage, store))
    out = out or OutputRoot(cache).export_dir(dataset.name, split, store.stage, fmt)
    _, line = export_store(store, out, fmt, split=split, instances=instances, progress=progress_enabled(ctx))
    logger(ctx)(line)
