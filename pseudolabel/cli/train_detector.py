"""``pseudolabel train-detector``: fine-tune the BBAM detector on a split's boxes."""
from __future__ import annotations

import json

import click

from . import cli
from .common import split_of, build_config, cache_option, config_options, dataset_from, data_root_option, logger, \
    parse_run_options, progress_enabled, split_option


def _config_class():
    from ..app.train_detector import TrainConfig
    return TrainConfig


@cli.command("train-detector")
@data_root_option
@cache_option
@split_option
@config_options(_config_class())
@click.option("--eval-split", default=None, help="Split with boxes to report box mAP@0.5 on after training.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Checkpoint folder [default: <cache>/<dataset>/<split>/detector].")
@click.option("--device", default="auto", metavar="auto|cpu|cuda|cuda:N",
              help="Where to train: auto = CUDA when torch sees a GPU, else the CPU.")
@click.option("--force", is_flag=True, help="Ignore last.pth and start over.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (checkpoint, mAP) as one JSON object.")
@click.pass_context
def train_detector_command(ctx, data_root, cache, split, eval_split, out, device, force, as_json, **values):
    """Fine-tune torchvision's Faster R-CNN ResNet-50-FPN on the boxes of SPLIT (from COCO
    weights by default, mapped to the VOC classes), with progress, a checkpoint per epoch and
    resume; writes OUT/model_final.pth for `pseudolabel bbam --weights`. Weights to start from
    are never downloaded: a missing file is named with where to put it."""
    from pathlib import Path

    from ..core.output_root import OutputRoot
    from ..app.train_detector import train
    dataset = dataset_from(data_root)
    split = split_of(dataset, split)
    config = build_config(_config_class(), values)
    out = Path(out) if out else OutputRoot(cache).detector_dir(dataset.name, split)
    from ..models.device import describe, resolve
    device = resolve(parse_run_options({"device": device}).device)      # spelled as a run's --device
    logger(ctx)(f"train-detector [{split}] on {describe(device)}, learning rate {config.learning_rate:g}")
    result = train(dataset, split, out, config, device=device, eval_split=eval_split, force=force,
                   progress=progress_enabled(ctx), log=logger(ctx))
    if as_json:
        click.echo(json.dumps(result, default=lambda v: None))
