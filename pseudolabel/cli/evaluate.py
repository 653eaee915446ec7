"""``pseudolabel evaluate``: score a store against the split's human masks."""
from __future__ import annotations

import json

import click

from ..evaluate import evaluate_store, format_table
from ..stages import STAGES
from ..store import LabelStore
from . import cli
from .common import open_store, cache_option, dataset_from, data_root_option, logger, progress_enabled, split_option


@cli.command("evaluate")
@data_root_option
@cache_option
@split_option
@click.option("--stage", type=click.Choice(list(STAGES)), default="boxes", help="Stage whose store to score.")
@click.option("--store", "store_file", type=click.Path(dir_okay=False), default=None,
              help="Score this store file instead of the one --stage/--split name under --cache.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout instead of the table.")
@click.pass_context
def evaluate_command(ctx, data_root, cache, split, stage, store_file, as_json):
    """Per-class IoU, mIoU and coverage of a store against SegmentationClass (or SBD cls).

    One 21-class confusion matrix over the split; ground-truth 255 excluded. Pseudo-label 255
    is reported as coverage; `miou` counts committed pixels only, `miou_ignore_as_background`
    counts 255 as background. Percentages are 0..100, coverage 0..1.
    """
    dataset = dataset_from(data_root)
    store = LabelStore(store_file) if store_file else open_store(cache, dataset, split, stage)
    result = evaluate_store(store, dataset, split, progress=progress_enabled(ctx), log=logger(ctx))
    if as_json:
        click.echo(json.dumps(result.report))
    else:
        click.echo(format_table(result.report))
