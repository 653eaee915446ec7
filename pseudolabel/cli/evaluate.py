"""``pseudolabel evaluate``: score a store against the split's human masks."""
from __future__ import annotations

import json

import click

from ..evaluation.semantic import evaluate_store, format_table, paired_bootstrap
from ..store import LabelStore
from . import cli
from .common import (split_of, cache_option, dataset_from, data_root_option, label_stages, logger, progress_enabled,
                     split_option, store_option, store_path)


@cli.command("evaluate")
@data_root_option
@cache_option
@split_option
@click.option("--stage", type=click.Choice(label_stages()), default=None,
              help="Stage whose store to score [default: boxes; with --store, any stage's].")
@store_option("Score")
@click.option("--against", default=None, metavar="STAGE|KEY|PATH",
              help="Also score another store (a stage's current one, or a store by cache key or path: e.g. "
                   "another configuration of the same stage) and give the change in mIoU with a 95% interval "
                   "(paired bootstrap over the images, 2000 draws): is a gain more than a few photos?")
@click.option("--instances", is_flag=True,
              help="Also score each object's mask against its ground-truth instance (SegmentationObject or "
                   "SBD inst): mean instance IoU, and COCO mask AP/AP50/AP75 through pycocotools.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object on stdout instead of the table (with each image's mIoU and coverage).")
@click.pass_context
def evaluate_command(ctx, data_root, cache, split, stage, store, against, instances, as_json):
    """Per-class IoU, mIoU and coverage of a store against SegmentationClass (or SBD cls).

    One 21-class confusion matrix over the split; ground-truth 255 excluded. Pseudo-label 255
    is reported as coverage; `miou` counts committed pixels only, `miou_ignore_as_background`
    counts 255 as background. The ten worst images follow the table. Percentages are 0..100,
    coverage 0..1.
    """
    dataset = dataset_from(data_root)
    split = split_of(dataset, split)
    store = LabelStore(store_path(cache, dataset, split, stage, store))
    other = None
    if against is not None:
        named = against in label_stages()
        other = LabelStore(store_path(cache, dataset, split, against if named else None, None if named else against))
        if other.all_ids != store.all_ids:
            raise click.UsageError(f"{other.path} and {store.path} hold different images; --against compares "
                                   f"two stores of the same split")
    result = evaluate_store(store, dataset, split, progress=progress_enabled(ctx), log=logger(ctx),
                            per_image=other is not None)
    if other is not None:
        base = evaluate_store(other, dataset, split, progress=progress_enabled(ctx), per_image=True)
        change = paired_bootstrap(base.per_image, result.per_image)
        result.report["against"] = {"stage": other.stage, "store": str(other.path), "miou": base.report["miou"],
                                    "miou_change": change}
    if instances:
        from ..evaluation.instances import evaluate_instances
        result.report["instances"] = evaluate_instances(store, dataset, split, progress=progress_enabled(ctx))
    if as_json:
        click.echo(json.dumps(result.report))
        return
    click.echo(format_table(result.report))
    if instances:
        from ..evaluation.instances import format_instances
        click.echo("\n" + format_instances(result.report["instances"]))
    if other is not None:
        c = result.report["against"]["miou_change"]
        click.echo(f"\nchange over {against} ({result.report['against']['miou']:.2f} mIoU): {c['difference']:+.2f} "
                   f"mIoU, {100 * c['level']:.0f}% interval [{c['low']:+.2f}, {c['high']:+.2f}] "
                   f"(paired bootstrap over {len(store.all_ids)} images)")
