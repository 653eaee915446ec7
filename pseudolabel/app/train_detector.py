"""Fine-tuning the BBAM detector on a split's boxes, and box mAP (``pseudolabel train-detector``).

BBAM explains a detector trained on the dataset's own boxes. This trains torchvision's Faster
R-CNN ResNet-50-FPN on the boxes of a split, starting from (``init``):

- ``coco``: torchvision's COCO detector (``COCO_WEIGHTS_FILE`` in the torch hub cache), its
  predictor cut to the 20 VOC classes through ``VOC_TO_COCO`` (``detector.coco_to_voc``), so
  training starts from a working VOC detector;
- ``imagenet``: torchvision's ImageNet ResNet-50 (``IMAGENET_WEIGHTS_FILE``) as the backbone,
  the rest random (how torchvision's own detection reference starts);
- ``none``: random weights (tests; useless otherwise);
- a path: a checkpoint of this command (or any 21-class state dict) to continue from.

Schedule, by default the published one (``configs/pascal_voc/BBAM_VOC_aug_FPN_R101_FasterRCNN.yaml``
of ``jbeomlee93/BBAM`` and maskrcnn-benchmark's defaults, on 10,582 train_aug images): SGD, momentum
0.9, weight decay 1e-4 (none on biases, whose learning rate is doubled), a base learning rate of 0.01
for 16 images per batch scaled linearly to ``batch_size`` (0.00125 for 2), linear warm-up from a
third of it over the first 8,000 images (500 iterations of 16), x0.1 at epochs 18 and 24 and 27
epochs in all (iterations 12,000, 16,000 and 18,000 of 16 images); multi-scale training, each image's
short side drawn from 480, 512, ..., 800 (long side at most 1333), evaluation at 800; random
horizontal flips. Everything is seeded. ``difficult`` boxes are left out of training and ignored by
the evaluation, as in VOC's protocol. (torchvision's detection reference uses 0.02 for 16 images:
``--lr 0.0025`` at batch 2.)

Checkpoints: ``<out>/last.pth`` after every epoch (model, optimiser, epoch, configuration) and
``<out>/model_final.pth`` (``{"model": state_dict, "meta": ...}``, what ``bbam --weights``
reads). A rerun resumes from ``last.pth`` when its configuration matches (``epochs`` may grow:
that continues the training); ``force`` restarts.

mAP: PASCAL VOC's AP at IoU 0.5 (all-point interpolated precision, VOC 2010+), per class over
the split's images, detections matched greedily by score, a detection on a difficult box
neither true nor false; mAP = mean over classes with at least one non-difficult box.
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..catalog import Dataset
from ..core.classes import NUM_CLASSES
from ..core.config import Checked, OptionError, option
from ..core.errors import ConfigError
from ..core.progress import Progress, format_seconds
from ..core.records import ImageRecord
from ..evaluation.detection import evaluate_detector, image_tensor

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TrainConfig(Checked):
    init: str = "coco"
    """Starting weights: coco (torchvision's COCO detector, predictor mapped to VOC), imagenet
    (ImageNet ResNet-50 backbone, rest random), none (random), or a checkpoint PATH."""
    epochs: int = option(27, ge=1, le=10_000)
    """Passes over the split (published: 18,000 iterations of 16 images, 27.2 passes of train_aug)."""
    batch_size: int = option(2, ge=1, le=1024)
    """Images per iteration."""
    lr: float = option(0.0, ge=0, le=10)
    """Learning rate; 0 = base_lr scaled linearly to batch_size (0.00125 for 2)."""
    base_lr: float = option(0.01, gt=0, le=10)
    """The learning rate for base_batch images per iteration (published: 0.01 for 16)."""
    base_batch: int = option(16, ge=1, le=4096)
    """See base_lr."""
    lr_steps: tuple[int, ...] = option((18, 24), ge=0, le=10_000)
    """Epochs at which the learning rate is multiplied by 0.1 (published: iterations 12,000 and 16,000
    of 16 images)."""
    warmup_images: int = option(8000, ge=0, le=10**8)
    """Images of linear warm-up (published: 500 iterations of 16)."""
    warmup_factor: float = option(1 / 3, gt=0, le=1)
    """The warm-up starts at this fraction of the learning rate (published: 1/3)."""
    bias_lr_factor: float = option(2.0, ge=0, le=100)
    """Biases learn this much faster (published: 2)."""
    bias_weight_decay: float = option(0.0, ge=0, le=1)
    """Weight decay of biases (published: 0)."""
    momentum: float = option(0.9, ge=0, lt=1)
    """SGD momentum."""
    weight_decay: float = option(1e-4, ge=0, le=1)
    """SGD weight decay."""
    min_size: int = option(800, ge=32, le=4096)
    """Input short side for evaluation (and BBAM's)."""
    min_size_train: tuple[int, ...] = option(tuple(range(480, 801, 32)), ge=32, nonempty=True, le=4096)
    """Training short sides: one drawn per image (published: 480 to 800 in steps of 32)."""
    max_size: int = option(1333, ge=32, le=8192)
    """Input long side at most."""
    trainable_layers: int = option(3, ge=0, le=5)
    """ResNet stages trained (5 = all; torchvision's default for fine-tuning is 3)."""
    rois_per_image: int = option(512, ge=1, le=100_000)
    """RoIs sampled per image for the box head's loss (torchvision's box_batch_size_per_image, and
    the published configuration's ROI batch): most of a training step's cost at small inputs."""
    seed: int = option(0, ge=0, le=2**31 - 2**16)
    """Seed of the initial weights, the image order and the flips."""

    def validate(self) -> None:
        if self.max_size < max(self.min_size, *self.min_size_train):
            raise OptionError("max_size", f"must be at least min_size and every min_size_train "
                                          f"({max(self.min_size, *self.min_size_train)}), got {self.max_size}")

    @property
    def learning_rate(self) -> float:
        """The learning rate used: ``lr``, or ``base_lr`` scaled to ``batch_size``."""
        return self.lr or self.base_lr * self.batch_size / self.base_batch

    @property
    def warmup_iterations(self) -> int:
        return -(-self.warmup_images // self.batch_size)


def initial_state(init: str) -> dict[str, torch.Tensor] | None:
    """The state dict to start from (None = random), or a ConfigError naming the missing file."""
    import torch

    from ..models.detector import COCO_WEIGHTS_FILE, IMAGENET_WEIGHTS_FILE, coco_to_voc, read_checkpoint, torch_hub_checkpoints
    if init == "none":
        return None
    if init == "coco":
        state = read_checkpoint(torch_hub_checkpoints() / COCO_WEIGHTS_FILE)
        return coco_to_voc(state) if state["roi_heads.box_predictor.cls_score.weight"].shape[0] == 91 else state
    if init == "imagenet":
        path = torch_hub_checkpoints() / IMAGENET_WEIGHTS_FILE
        if not path.is_file():
            raise ConfigError(f"ImageNet weights not found: {path}. Download https://download.pytorch.org/models/"
                              f"{IMAGENET_WEIGHTS_FILE} on a machine with network access and copy it to "
                              f"{path.parent}/, or use --init coco / --init CHECKPOINT")
        try:
            resnet = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
        return {f"backbone.body.{k}": v for k, v in resnet.items() if not k.startswith("fc.")}
    state = read_checkpoint(init)
    n = state["roi_heads.box_predictor.cls_score.weight"].shape[0]
    return coco_to_voc(state) if n == 91 else state


def make_model(config: TrainConfig):
    import torch

    from ..models.detector import IMAGENET_WEIGHTS_FILE, build_model
    torch.manual_seed(config.seed)                     # the random parts of the initial weights
    model = build_model(NUM_CLASSES, config.min_size, config.max_size, config.trainable_layers)
    model.roi_heads.fg_bg_sampler.batch_size_per_image = config.rois_per_image
    model.transform.min_size = tuple(config.min_size_train)      # drawn per image in training
    state = initial_state(config.init)
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=config.init != "imagenet")
        if config.init == "imagenet" and any(not k.startswith(("backbone.fpn", "rpn", "roi_heads")) for k in missing):
            raise ConfigError(f"{IMAGENET_WEIGHTS_FILE}: not a ResNet-50 state dict")
    return model


def _targets(record: ImageRecord, flip: bool, device) -> dict[str, torch.Tensor]:
    import torch
    keep = ~record.flags("difficult")
    boxes = record.boxes()[keep].astype(np.float32)
    if flip:
        boxes[:, [0, 2]] = record.width - boxes[:, [2, 0]]
    return {"boxes": torch.from_numpy(boxes).reshape(-1, 4).to(device),
            "labels": torch.from_numpy(record.classes()[keep].astype(np.int64)).to(device)}


def _usable(records) -> list[ImageRecord]:
    return [r for r in records if isinstance(r, ImageRecord) and (~r.flags("difficult")).any()]


def _optimiser(model, config: TrainConfig):
    """SGD with momentum; weight decay and learning-rate factor by parameter kind (biases apart)."""
    import torch
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if not n.endswith(".bias")], "weight_decay": config.weight_decay,
               "lr_factor": 1.0},
              {"params": [p for n, p in named if n.endswith(".bias")], "weight_decay": config.bias_weight_decay,
               "lr_factor": config.bias_lr_factor}]
    return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum)


def _resume(last: Path, model, optimiser, identity: dict, epochs: int, device, log) -> int:
    """Load ``last.pth`` into ``model`` and ``optimiser`` when it is there; the epochs it had done."""
    import torch
    if not last.exists():
        return 0
    try:                                 # tensors and plain values only: a file is never unpickled
        ckpt = torch.load(last, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - UnpicklingError for anything but weights, or a damaged file
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{last}: not a resume state of train-detector that loads as plain weights ({problem}); "
                          f"it is never unpickled: remove it, or use --force to start over") from None
    if not isinstance(ckpt, dict) or ckpt.get("identity") != identity:
        raise ConfigError(f"{last} was made with another configuration or data; use --force to start over")
    model.load_state_dict(ckpt["model"])
    optimiser.load_state_dict(ckpt["optimiser"])
    log(f"resuming from {last}: {ckpt['epoch']} of {epochs} epochs done")
    return ckpt["epoch"]


def _set_learning_rate(optimiser, config: TrainConfig, epoch: int, it: int) -> None:
    """The published schedule: linear warm-up, then x0.1 at each of ``lr_steps`` (epochs)."""
    factor = 0.1 ** sum(epoch >= s for s in config.lr_steps)
    if it < config.warmup_iterations:
        alpha = it / config.warmup_iterations
        factor *= config.warmup_factor * (1 - alpha) + alpha
    for group in optimiser.param_groups:
        group["lr"] = config.learning_rate * factor * group["lr_factor"]


def _step(model, optimiser, batch: list[ImageRecord], flips: list[bool], device, it: int) -> float:
    """One SGD step on a batch; the loss."""
    import torch
    images = [image_tensor(r, device, f) for r, f in zip(batch, flips)]
    targets = [_targets(r, f, device) for r, f in zip(batch, flips)]
    loss = sum(model(images, targets).values())
    if not torch.isfinite(loss):
        raise ConfigError(f"training diverged at iteration {it} (loss {float(loss.detach())}); lower --lr")
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.detach())


def train(dataset: Dataset, split: str, out: str | os.PathLike, config: TrainConfig, *, device: str = "cpu",
          eval_split: str | None = None, force: bool = False, progress: bool = True,
          max_iterations: int | None = None, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Train (or resume), write ``model_final.pth``; evaluate on ``eval_split`` when given.
    ``max_iterations`` stops early (tests)."""
    import torch
    if not dataset.labels.is_voc:
        raise ConfigError(f"train-detector trains BBAM's detector on PASCAL VOC's 20 classes; the classes of "
                          f"{dataset.root} ({dataset.kind}) are others")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = _usable(dataset.records(split))
    if not records:
        raise ConfigError(f"split '{split}' of {dataset.root} has no image with a non-difficult box to train on")
    settings = {k: v for k, v in json.loads(json.dumps(asdict(config))).items() if k != "epochs"}
    identity = {"dataset_root": str(dataset.root), "split": split, "config": settings}   # more epochs: resume
    model = make_model(config).to(device)
    optimiser = _optimiser(model, config)
    last = out / "last.pth"
    if force:
        last.unlink(missing_ok=True)
    start_epoch = _resume(last, model, optimiser, identity, config.epochs, device, log)
    per_epoch = (len(records) + config.batch_size - 1) // config.batch_size
    it = start_epoch * per_epoch
    bar = Progress(per_epoch * config.epochs - it, f"train-detector [{split}]", unit="iterations", enabled=progress)
    started = time.perf_counter()
    model.train()
    losses: list[float] = []
    for epoch in range(start_epoch, config.epochs):
        rng = random.Random(config.seed * 1000 + epoch)
        order = records[:]
        rng.shuffle(order)
        for b in range(0, len(order), config.batch_size):
            _set_learning_rate(optimiser, config, epoch, it)
            batch = order[b:b + config.batch_size]
            losses.append(_step(model, optimiser, batch, [rng.random() < 0.5 for _ in batch], device, it))
            it += 1
            bar.update()
            if max_iterations is not None and it >= max_iterations:
                break
        torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch + 1,
                    "identity": identity}, last)
        log(f"epoch {epoch + 1}/{config.epochs}: mean loss {np.mean(losses[-per_epoch:]):.4f}, checkpoint {last}")
        if max_iterations is not None and it >= max_iterations:
            break
    bar.close()
    return _finish(model, out, identity, it, losses, started, config, dataset, eval_split, device, progress, log)


def _finish(model, out: Path, identity: dict, it: int, losses: list[float], started: float, config: TrainConfig,
            dataset: Dataset, eval_split: str | None, device, progress: bool, log) -> dict[str, Any]:
    """Write ``model_final.pth``, evaluate on ``eval_split`` when given; what the run did."""
    import torch
    final = out / "model_final.pth"
    torch.save({"model": model.state_dict(), "meta": {**identity, "iterations": it}}, final)
    result: dict[str, Any] = {"checkpoint": str(final), "iterations": it,
                              "wall_s": round(time.perf_counter() - started, 1),
                              "losses": [round(v, 5) for v in losses]}
    log(f"wrote {final} ({it} iterations, {format_seconds(result['wall_s'])} this run)")
    if eval_split:
        model.transform.min_size = (config.min_size,)          # evaluation at one size (800)
        result["eval"] = evaluate_detector(model, dataset, eval_split, device=device, progress=progress)
        log(f"box mAP@0.5 on '{eval_split}': {100 * result['eval']['map']:.2f}")
    return result
