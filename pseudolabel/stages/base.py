"""What a stage is: a frozen configuration dataclass and a pure per-image function.

A stage never opens a store, never chooses its parallelism and never reads files other than
through the catalog (the runner loads the image). ``process_image(record, image, config,
inputs, context)`` returns a :class:`~pseudolabel.core.results.StageResult` (label stores) or a
:class:`~pseudolabel.core.results.ProposalResult` (proposal stores); the store's entry adds what the
record already knows (boxes, classes, flags) and the filling rates. ``inputs`` holds, per
upstream stage the configuration names (``Stage.inputs(config)``), that stage's result for this
image, read by the runner from its finished store: a :class:`~pseudolabel.store.Sample` with
masks, or a :class:`~pseudolabel.store.Proposals`; ``context`` is a :class:`StageContext` (the
device of a stage that runs a network).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..core.classes import VOC, LabelSpace
from ..core.results import ProposalResult, StageResult


@dataclass(frozen=True)
class StageContext:
    """Where a stage's work runs, handed by the runner to ``process_image`` / ``process_batch``
    with every image (as IRNet's workers get their device id): ``device`` is the torch device of a
    stage that runs a network (``cpu``, ``cuda``, ``cuda:N``; resolved from ``--device`` once per
    run), ``cpu`` for every other stage; ``labels`` the dataset's label space. Nothing about where
    a run runs is global to a process."""

    device: str = "cpu"
    labels: LabelSpace = VOC
    """The dataset's classes (label values 1..C of the results)."""


CPU = StageContext()


def no_inputs(config: Any) -> tuple[str, ...]:
    return ()


def no_check(config: Any) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    """A registered stage: its name, one-line description, config class and worker.

    output: ``"labels"`` (a label store) or ``"proposals"`` (a proposal store).
    inputs: the upstream stages whose stores ``process_image`` reads, given its config.
    """

    name: str
    help: str
    config_class: type
    process_image: Callable[..., StageResult | ProposalResult]
    needs_image: bool = True
    output: str = "labels"
    inputs: Callable[[Any], tuple[str, ...]] = no_inputs
    check: Callable[[Any], None] = no_check
    """Called once before any work: raise a PseudolabelError for what would fail every image
    (e.g. missing detector weights)."""
    process_batch: Callable[..., list] | None = None
    """Optional: ``(records, images, config, inputs, context) -> results``, several images of the same
    size at once (one result per record, in order; each must equal what ``process_image``
    gives for that image alone). The runner uses it when ``batch_images(config) > 1``."""
    batch_images: Callable[[Any], int] = lambda config: 1
    """How many images of the same size the runner hands to ``process_batch`` at once."""
    voc_only: bool = False
    """The stage knows VOC's 20 classes only (bbam explains a VOC detector): the runner refuses a
    dataset with other classes before any work."""
    uses_device: bool = False
    """The stage runs a network on a device (``--device``, ``--gpus``): the runner resolves the device
    once, hands it to the stage in its :class:`StageContext` and runs one worker per device whatever
    ``--jobs`` says."""
    recompose: Callable[..., Any] | None = None
    """Optional, for stages whose per-object masks another stage changes (``refine``):
    ``(sample, masks, planes) -> (H, W) uint8 label``, this stage's own rule for composing a label
    from per-object masks, read from what its store records for the image (``sample``: its
    configuration, per-object flags and planes). ``masks``: the changed (K, H, W) masks;
    ``planes``: changed ``*_masks`` planes, where the caller has them."""
    revision: int = 1
    """Bump it in the commit that makes the same configuration give different output (an
    algorithm changed, not an option): the cache key covers it, so stores made by the earlier
    code are not reused as if they were current. Revision 1 adds nothing to the key, so stores
    made before revisions existed keep their keys."""
