"""The worker side of a run: one unit of work (an image, or a group of same-size images for a
stage with ``process_batch``) in, typed outcomes out.

A worker decides the frame of the photo (its EXIF orientation applied or not: ``catalog.pixels``)
and loads it through the catalog, reads its upstream stores (passed as paths, opened
once per process), calls the stage and builds the store entry (compressing image-sized arrays
here, in parallel). It never writes: outcomes go back to the parent, the only writer. Everything
here is picklable and free of open handles, so any executor can run it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..catalog import load_image
from ..catalog.pixels import Frame, photo_frame
from ..core.errors import DataError
from ..core.records import ImageRecord
from ..stages import StageContext, get_stage
from ..store.entry import Entry, build_entry
from ..store.reader import open_store


@dataclass(frozen=True)
class Done:
    """An image the stage processed: its store entry and the events to total over the run."""

    image_id: str
    entry: Entry
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """An image with bad input: the file and the problem."""

    image_id: str
    path: str
    problem: str

    @property
    def reason(self) -> str:
        return f"{self.path}: {self.problem}"


Outcome = Done | Failed

_UPSTREAM: dict[tuple[int, str], tuple[tuple[int, int], Any]] = {}


def _upstream(path: str):
    """Open an upstream store once per process (workers open their own handles), and again
    when the file at ``path`` was replaced (a recomputed or retried store, renamed into place)."""
    key, st = (os.getpid(), path), os.stat(path)
    stamp = (st.st_ino, st.st_mtime_ns)
    cached = _UPSTREAM.get(key)
    if cached is None or cached[0] != stamp:
        if cached is not None:
            cached[1].close()
        _UPSTREAM[key] = (stamp, open_store(path, load_masks=True))
    return _UPSTREAM[key][1]


def close_upstream() -> None:
    """Close the upstream stores this process holds open (a run in this process is over: the
    files must not stay open after it, e.g. for a caller that rewrites them)."""
    for key in [k for k in _UPSTREAM if k[0] == os.getpid()]:
        _UPSTREAM.pop(key)[1].close()


def read_inputs(record: ImageRecord, inputs: dict[str, str]) -> dict[str, Any]:
    """This image's results from the upstream stores, or a DataError naming the store."""
    out = {}
    for name, path in inputs.items():
        store = _upstream(path)
        if record.image_id in store.failed:
            raise DataError(path, f"image failed in stage '{name}': {store.failed[record.image_id]}",
                            record.image_id)
        if record.image_id not in store:
            raise DataError(path, f"stage '{name}' has no result for this image", record.image_id)
        out[name] = store[record.image_id]
    return out


def _pin_threads() -> None:
    """One core per worker: OpenCV would otherwise start a thread pool in every process."""
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def _done(record: ImageRecord, result, frame: Frame, context: StageContext) -> Done:
    return Done(record.image_id, build_entry(record, result, frame, context.labels), dict(result.counts))


def process_record(stage_name: str, config: Any, record: ImageRecord, inputs: dict[str, str],
                   context: StageContext) -> Outcome:
    stage = get_stage(stage_name)
    try:
        upstream = read_inputs(record, inputs)           # an upstream failure is named first
        frame = photo_frame(record)
        image = load_image(record, frame) if stage.needs_image else None
        result = stage.process_image(record, image, config, upstream, context)
    except DataError as err:
        return Failed(record.image_id, err.path, err.problem)
    return _done(record, result, frame, context)


def process_group(stage_name: str, config: Any, records: tuple[ImageRecord, ...], inputs: dict[str, str],
                  context: StageContext) -> list[Outcome]:
    """Images of one size through the stage's ``process_batch`` together. An image whose input is
    bad fails alone; if the batch itself raises a DataError, every image is redone alone so the
    error is attributed to its own image."""
    stage = get_stage(stage_name)
    out: dict[str, Outcome] = {}
    ready, images, upstreams, frames = [], [], [], []
    for record in records:
        try:
            upstream = read_inputs(record, inputs)
            frame = photo_frame(record)
            image = load_image(record, frame) if stage.needs_image else None
        except DataError as err:
            out[record.image_id] = Failed(record.image_id, err.path, err.problem)
            continue
        ready.append(record)
        upstreams.append(upstream)
        images.append(image)
        frames.append(frame)
    try:
        results = stage.process_batch(ready, images, config, upstreams, context) if ready else []
    except DataError:
        return [process_record(stage_name, config, r, inputs, context) for r in records]
    for record, result, frame in zip(ready, results, frames):
        out[record.image_id] = _done(record, result, frame, context)
    return [out[r.image_id] for r in records]


def process_unit(stage_name: str, config: Any, records: tuple[ImageRecord, ...], inputs: dict[str, str],
                 batched: bool = False, context: StageContext = StageContext()) -> list[Outcome]:
    """The worker function every executor runs: the outcomes of one unit of work, in order.
    ``batched``: the unit goes through the stage's ``process_batch`` as one group; ``context``:
    where the stage runs (the device of a stage that runs a network), handed to the stage."""
    _pin_threads()
    if batched:
        return process_group(stage_name, config, records, inputs, context)
    return [process_record(stage_name, config, r, inputs, context) for r in records]
