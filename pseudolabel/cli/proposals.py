"""``pseudolabel evaluate-proposals``: average best overlap and recall of a proposal store."""
from __future__ import annotations

import json

import click

from ..evaluation.proposals import evaluate_proposals
from ..store import ProposalStore
from . import cli
from .common import split_of, cache_option, dataset_from, data_root_option, progress_enabled, split_option, store_path


@cli.command("evaluate-proposals")
@data_root_option
@cache_option
@split_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.pass_context
def evaluate_proposals_command(ctx, data_root, cache, split, as_json):
    """ABO (average best overlap) and recall at IoU 0.5 / 0.7 of the proposals store against
    the ground-truth instances (SegmentationObject), over instances whose box is at least
    32x32 px, and over all instances under "all"; each also by instance size (COCO's small /
    medium / large: under 32x32, up to 96x96, above) and per class; proposals and seconds per
    image."""
    dataset = dataset_from(data_root)
    split = split_of(dataset, split)
    store = ProposalStore(store_path(cache, dataset, split, "proposals"))
    report = evaluate_proposals(store, dataset, split, progress=progress_enabled(ctx))
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"instances >= {report['min_box']}x{report['min_box']} px: ABO {report['abo']}, "
               f"recall@0.5 {report['recall_50']}, recall@0.7 {report['recall_70']} ({report['instances']} instances)")
    a = report["all"]
    click.echo(f"all instances: ABO {a['abo']}, recall@0.5 {a['recall_50']}, recall@0.7 {a['recall_70']} "
               f"({a['instances']} instances)")
    click.echo("by size (pixels): " + ", ".join(
        f"{name} ABO {v['abo']} ({v['instances']})" for name, v in report["by_size"].items() if v["instances"]))
    click.echo("per class: " + ", ".join(f"{c} {v['abo']} ({v['instances']})" for c, v in report["per_class"].items()))
    click.echo(f"{report['proposals_per_image']} proposals and {report['seconds_per_image']} s per image "
               f"over {report['images']} images")
