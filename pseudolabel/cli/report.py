"""``pseudolabel report``: a static HTML page of stages' scores, flags and overlays."""
from __future__ import annotations

import click

from . import cli
from .common import split_of, cache_option, dataset_from, data_root_option, label_stages, logger, progress_enabled, split_option

DEFAULT_STAGES = "grabcut,refine,fuse"


@cli.command("report")
@data_root_option
@cache_option
@split_option
@click.option("--stages", default=None,
              help=f"Comma-separated stages whose current stores to show, side by side; examples are chosen by "
                   f"the last store's per-image mIoU. [default: {DEFAULT_STAGES}, unless --store is given]")
@click.option("--store", "stores", multiple=True, metavar="KEY|PATH",
              help="A store to show after --stages' (repeatable): a store file, or the cache key of one under "
                   "--cache (`pseudolabel cache list` shows them), e.g. two configurations of one stage.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder of the page [default: <cache>/<dataset>/<split>/report].")
@click.option("--examples", type=click.IntRange(min=1, max=50), default=3,
              help="Images shown in each of worst, median and best.")
@click.pass_context
def report_command(ctx, data_root, cache, split, stages, stores, out, examples):
    """Write OUT/index.html: per-class IoU of each store side by side, coverage, filling rates,
    guard/fallback counts, and overlays of the worst, median and best images (PNGs beside the
    page; it opens from disk, no server)."""
    from ..core.output_root import OutputRoot
    from ..report import build_report
    from ..store import StoreIndex
    from .common import store_path

    dataset = dataset_from(data_root)
    split = split_of(dataset, split)
    stages = DEFAULT_STAGES if stages is None and not stores else (stages or "")
    names = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = [s for s in names if s not in label_stages()]
    if unknown or not (names or stores):
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: not a stage that makes labels; "
                                 f"choose from {', '.join(label_stages())}", param_hint="--stages")
    shown = [(name, store_path(cache, dataset, split, name)) for name in names]
    for spec in stores:
        path = OutputRoot(cache).find_store(dataset.name, split, spec)
        meta = StoreIndex.open(path).meta
        shown.append((f"{meta.get('stage')}@{meta.get('cache_key', path.stem)}", path))
    out = out or OutputRoot(cache).report_dir(dataset.name, split)
    build_report(dataset, split, shown, out, examples=examples, progress=progress_enabled(ctx), log=logger(ctx))
