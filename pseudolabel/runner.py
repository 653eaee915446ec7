"""The runner: the only code that joins a stage, an executor and a store.

    records (catalog) -> worker: load image, stage.process_image -> entry
                      -> parent: journal (crash-safe) -> final HDF5 store (atomic rename)

Workers return arrays; only this process writes. Parallelism goes through joblib, so the
backend can be chosen from outside (``joblib.parallel_config``); ``jobs=1`` is a plain loop.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .catalog import Dataset, load_image
from .classes import IGNORE, NUM_CLASSES, VOC_CLASSES
from .errors import DataError, StoreError
from .labels import filling_rates
from .progress import Progress, format_seconds
from .records import BadRecord, ImageRecord
from .stages import StageResult, get_stage
from .stages.base import ProposalResult, config_hash, config_json
from .store.journal import Journal, run_lock
from .store.reader import _open_checked, open_store
from .store.schema import (FORMATS, ChunkedArray, keyed_store_path, partial_dir, point_current, read_entry,
                           read_meta, store_path, write_store)

ON_ERROR = ("fail", "skip")


@dataclass
class RunSummary:
    stage: str
    split: str
    store: Path
    images: int = 0            # images in the split
    processed: int = 0         # images this run worked on
    resumed: int = 0           # images already finished by an earlier, interrupted run
    done: int = 0              # finished images in the store
    failed: int = 0            # images recorded as failed in the finished store
    retried: int = 0           # images that had failed in the finished store and were redone
    objects: int = 0           # objects in the images this run processed
    wall_s: float = 0.0
    nothing_to_do: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)   # stage events, e.g. guards fired
    output: str = "labels"     # "proposals": objects counts proposals
    current: Path | None = None  # <stage>.h5, the link to ``store`` (None for a shard)

    def where(self) -> str:
        return f"{self.current} -> {self.store.parent.name}/{self.store.name}" if self.current else str(self.store)

    def lines(self) -> list[str]:
        if self.nothing_to_do:
            retry = f"; --retry-failed redoes the {self.failed} failed, " if self.failed else "; "
            return [f"{self.stage} [{self.split}]: nothing to do, {self.where()} is complete "
                    f"({self.done} done, {self.failed} failed){retry}--force recomputes every image"]
        speed = (f"{self.objects / self.wall_s:.1f} boxes/s" if self.output == "labels"
                 else f"{self.wall_s / max(self.processed, 1):.2f} s/image") if self.wall_s > 0 else "-"
        what = "objects" if self.output == "labels" else "proposals"
        out = [f"{self.stage} [{self.split}]: {self.processed} images, {self.objects} {what} in "
               f"{format_seconds(self.wall_s)} ({self.wall_s:.1f} s, {speed})"
               + (f"; {self.resumed} resumed from an interrupted run" if self.resumed else "")
               + (f"; retried {self.retried} image(s) that had failed, the others kept" if self.retried else ""),
               f"store: {self.where()} ({self.done} done, {self.failed} failed of {self.images})"]
        if self.counts:
            out.insert(1, "events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))
        if self.failed:
            out.append(f"{self.failed} image(s) failed and were skipped; reasons are in the store "
                       f"(pseudolabel info {self.store} --failures)")
        return out


def resolve_jobs(jobs: int) -> int:
    """``0`` means every core this process may use."""
    if jobs < 0:
        raise ValueError(f"--jobs must be 0 (all cores) or a positive number, not {jobs}")
    if jobs == 0:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return jobs


def _pin_threads() -> None:
    """One core per worker: OpenCV and torch would otherwise each start a thread pool."""
    try:
        import cv2
        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def build_entry(record: ImageRecord, result: StageResult | ProposalResult) -> dict[str, Any]:
    """What the store keeps for one image: the stage's arrays plus what the record knows,
    checked for shape and value range. Image-sized arrays are compressed here, in the worker."""
    if isinstance(result, ProposalResult):
        return build_proposal_entry(record, result)
    shape, k = (record.height, record.width), len(record.objects)
    label = np.asarray(result.label)
    if label.shape != shape or label.dtype != np.uint8:
        raise TypeError(f"stage returned label {label.shape} {label.dtype}, expected {shape} uint8")
    bad = (label >= NUM_CLASSES) & (label != IGNORE)
    if bad.any():
        raise ValueError(f"stage returned label values outside 0..20/255: {np.unique(label[bad])}")
    masks = np.asarray(result.masks, dtype=bool)
    if masks.shape != (k, *shape):
        raise TypeError(f"stage returned masks {masks.shape}, expected {(k, *shape)}")
    boxes, classes = record.boxes(), record.classes()
    for name, arr in result.objects.items():
        if len(arr) != k:
            raise TypeError(f"stage returned per-object array '{name}' of length {len(arr)}, expected {k}")
    maps = None
    if result.maps is not None:
        maps = np.asarray(result.maps, dtype=np.float16)
        if maps.shape != masks.shape:
            raise TypeError(f"stage returned maps {maps.shape}, expected {masks.shape}")
        maps = ChunkedArray.encode(maps)
    planes = {}
    for name, arr in result.planes.items():
        arr = np.asarray(arr, dtype=bool)
        if not name.endswith("_masks") or name == "masks" or arr.shape != masks.shape:
            raise TypeError(f"stage returned plane '{name}' {arr.shape}: planes are named *_masks "
                            f"and shaped like masks {masks.shape}")
        planes[name] = ChunkedArray.encode(arr.view(np.uint8))
    return {
        "image_path": record.image_path,
        "height": shape[0],
        "width": shape[1],
        "num_objects": k,
        "label": ChunkedArray.encode(label),
        "masks": ChunkedArray.encode(masks.view(np.uint8)),
        "maps": maps,
        "boxes": boxes.astype(np.int32),
        "classes": classes.astype(np.uint8),
        "difficult": record.flags("difficult").view(np.uint8),
        "truncated": record.flags("truncated").view(np.uint8),
        "filling_rate": filling_rates(label, boxes, classes).astype(np.float32),
        "objects": dict(result.objects),
        "attrs": dict(result.attrs),
        **planes,
    }


def build_proposal_entry(record: ImageRecord, result: ProposalResult) -> dict[str, Any]:
    sp = np.asarray(result.superpixels)
    if sp.shape != (record.height, record.width):
        raise TypeError(f"stage returned superpixels {sp.shape}, expected {(record.height, record.width)}")
    m = result.membership.tocsr()
    n = int(sp.max()) + 1 if sp.size else 0
    if m.shape[1] != n:
        raise TypeError(f"membership has {m.shape[1]} columns but the image has {n} superpixels")
    return {
        "image_path": record.image_path,
        "height": sp.shape[0],
        "width": sp.shape[1],
        "num_objects": int(m.shape[0]),                 # proposals, in a proposal store's index
        "superpixels": ChunkedArray.encode(sp.astype(np.int32)),
        "indptr": m.indptr.astype(np.int64),
        "indices": m.indices.astype(np.int32),
        "attrs": {"num_superpixels": n, "num_proposals": int(m.shape[0]), **result.attrs},
    }


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


def process_record(stage_name: str, config: Any, record: ImageRecord, inputs: dict[str, str] | None = None) -> tuple:
    """Worker: ``("ok", id, entry, counts)`` or ``("failed", id, path, problem)`` for bad input.
    Picklable and free of open handles (upstream stores are passed as paths), so any joblib
    backend can run it."""
    _pin_threads()
    stage = get_stage(stage_name)
    try:
        upstream = read_inputs(record, inputs or {})
        image = load_image(record) if stage.needs_image else None
        result = stage.process_image(record, image, config, upstream)
    except DataError as err:
        return ("failed", record.image_id, err.path, err.problem)
    return ("ok", record.image_id, build_entry(record, result), dict(getattr(result, "counts", {})))


def _versions() -> dict[str, str]:
    """Versions of what made a store, for its run log."""
    import platform
    from importlib.metadata import PackageNotFoundError, version
    out = {"pseudolabel": __version__, "python": platform.python_version()}
    for name in ("torch", "torchvision", "opencv-python-headless", "numpy", "h5py"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def process_group(stage_name: str, config: Any, records: list[ImageRecord],
                  inputs: dict[str, str] | None = None) -> list[tuple]:
    """Worker for stages with ``process_batch``: :func:`process_record`'s tuples for several
    images of the same size processed together. An image whose input is bad fails alone; if
    the batch itself raises a DataError, every image is redone alone so the error is
    attributed to its own image."""
    _pin_threads()
    stage = get_stage(stage_name)
    out: dict[str, tuple] = {}
    ready, images, upstreams = [], [], []
    for record in records:
        try:
            upstreams.append(read_inputs(record, inputs or {}))
            images.append(load_image(record) if stage.needs_image else None)
            ready.append(record)
        except DataError as err:
            upstreams = upstreams[:len(ready)]
            out[record.image_id] = ("failed", record.image_id, err.path, err.problem)
    try:
        results = stage.process_batch(ready, images, config, upstreams) if ready else []
    except DataError:
        return [process_record(stage_name, config, r, inputs) for r in records]
    for record, result in zip(ready, results):
        out[record.image_id] = ("ok", record.image_id, build_entry(record, result),
                                dict(getattr(result, "counts", {})))
    return [out[r.image_id] for r in records]


def image_groups(records: list, size: int) -> list[list]:
    """Consecutive runs (split order) of at most ``size`` records whose images have the same
    size. Formed over the whole split (before skipping finished images), so a resumed run
    puts every remaining image in the group it had in the first run."""
    groups: list[list] = []
    for r in records:
        if groups and len(groups[-1]) < size and (groups[-1][0].width, groups[-1][0].height) == (r.width, r.height):
            groups[-1].append(r)
        else:
            groups.append([r])
    return groups


def _now(timespec: str = "seconds") -> str:
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def _completed() -> str:
    """A store's completion time, to the microsecond: downstream stores and exports pin the
    store they read by it, so a store rewritten within the same second (a quick retry) must
    still read as a different one."""
    return _now("microseconds")


def _identity(stage: str, dataset: Dataset, split: str, config: Any, inputs: dict[str, str]) -> dict[str, Any]:
    """What a store is made from; a resume or a rerun must match it exactly. ``inputs`` pins
    each upstream store by its configuration hash and completion time."""
    upstream = {}
    for name, path in inputs.items():
        with _open_checked(Path(path)) as f:
            meta = read_meta(f)
        upstream[name] = {"path": path, "config_hash": meta["config_hash"], "completed": meta["completed"],
                          "cache_key": meta.get("cache_key", meta["config_hash"])}
    revision = get_stage(stage).revision
    return {"stage": stage, "stage_revision": revision, "dataset": dataset.name,
            "dataset_root": str(dataset.root), "dataset_kind": dataset.kind, "split": split,
            "config": config_json(config), "config_hash": config_hash(config),
            "inputs": json.dumps(upstream, sort_keys=True),
            "cache_key": cache_key(config, {k: v["cache_key"] for k, v in upstream.items()}, revision)}


def cache_key(config: Any, upstream_keys: dict[str, str], revision: int = 1) -> str:
    """12 hex digits of SHA-256 over the stage's configuration, its revision (``Stage.revision``;
    1 adds nothing, so older stores keep their keys) and its upstream stores' keys: the name of
    the store a run writes (``<stage>/<key>.h5``). Same configuration and code on the same
    inputs, same key: the cache is reused; any change anywhere upstream, a new key."""
    payload = {"config": json.loads(config_json(config)), "inputs": upstream_keys}
    if revision != 1:
        payload["revision"] = revision
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _mismatch(have: dict[str, Any], want: dict[str, Any], same_upstream_config: bool = False) -> list[str]:
    """What differs between two store identities. ``same_upstream_config``: upstream stores
    count as the same when their configurations are (a retried upstream store has a new
    completion time but the same results for every image that was done before)."""
    def upstream(identity):
        inputs = json.loads(identity.get("inputs", "{}"))
        if same_upstream_config:
            inputs = {k: {f: v.get(f) for f in ("path", "config_hash", "cache_key")} for k, v in inputs.items()}
        return inputs

    names = {"config_hash": "configuration", "dataset_root": "dataset", "inputs": "upstream stores"}
    return [names.get(k, k) for k in ("stage", "dataset_root", "split", "config_hash")
            if have.get(k, "{}") != want.get(k)] + (["upstream stores"] if upstream(have) != upstream(want) else [])


def upstream_paths(stage_name: str, config: Any, dataset: Dataset, split: str, cache) -> dict[str, str]:
    """Paths of the finished stores a stage reads, or a StoreError saying what to run first."""
    paths = {}
    for name in get_stage(stage_name).inputs(config):
        get_stage(name)
        path = store_path(cache, dataset.name, split, name)
        if not path.exists():
            raise StoreError(f"stage '{stage_name}' reads the '{name}' store, and {path} is not finished; "
                             f"run `pseudolabel {name} --split {split}` with the same --data-root and --cache first")
        paths[name] = str(path.resolve())
    return paths


def stage_target(stage_name: str, config: Any, dataset: Dataset, split: str, cache) -> tuple[dict[str, str], str, Path]:
    """``(inputs, key, path)``: the upstream stores a run of this configuration reads, its cache
    key and its keyed store path."""
    inputs = upstream_paths(stage_name, config, dataset, split, cache)
    key = _identity(stage_name, dataset, split, config, inputs)["cache_key"]
    return inputs, key, keyed_store_path(cache, dataset.name, split, stage_name, key)


KEEP_BYTES = 256 << 20
"""Entries of this run kept in memory (besides the journal) for the final assembly, so it
need not read them back from disk: a serial step every parallel run waits for."""


def _entry_bytes(entry: dict[str, Any]) -> int:
    total = 0
    for value in entry.values():
        if isinstance(value, ChunkedArray):
            total += sum(len(c) for c in value.chunks)
        elif isinstance(value, np.ndarray):
            total += value.nbytes
        elif isinstance(value, dict):
            total += sum(np.asarray(v).nbytes for v in value.values())
    return total


class _Kept(dict):
    """At most ``budget`` bytes of finished entries; the rest are read back from the journal."""

    def __init__(self, budget: int):
        super().__init__()
        self.room = budget

    def add(self, image_id: str, entry: dict[str, Any]) -> None:
        size = _entry_bytes(entry)
        if size <= self.room:
            self[image_id] = entry
            self.room -= size


BACKENDS = ("loky", "dask")
"""``loky``: ``jobs`` local worker processes. ``dask``: every worker of the dask.distributed
cluster of the current ``distributed.Client`` (``scaleout.dask_client``), through joblib's dask
backend; results still come back to this process, the only writer."""


def _map(stage_name: str, config: Any, records: list[ImageRecord], jobs: int, inputs: dict[str, str],
         backend: str = "loky", all_records: list | None = None):
    """Results of ``process_record`` over ``records``: in split order for ``jobs=1`` (a plain
    loop); otherwise as they finish, with the largest images (most boxes, then most pixels)
    submitted first, so no long image is left running alone at the end. Order does not
    change the store: entries are keyed by id and assembled in split order. For a stage with
    ``process_batch`` and ``batch_images(config) > 1`` the unit of work is a group of
    same-size images (:func:`image_groups` over ``all_records``, the whole split)."""
    stage = get_stage(stage_name)
    size = stage.batch_images(config) if stage.process_batch is not None else 1
    if size > 1:
        todo = {r.image_id for r in records}
        groups = [[r for r in g if r.image_id in todo] for g in image_groups(all_records or records, size)]
        todo_groups = [g for g in groups if g]
        if backend == "loky" and (jobs == 1 or len(todo_groups) <= 1):
            for g in todo_groups:
                yield from process_group(stage_name, config, g, inputs)
            return
        work = [(process_group, g) for g in sorted(todo_groups, key=lambda g: -sum(len(r.objects) for r in g))]
    else:
        if backend == "loky" and (jobs == 1 or len(records) <= 1):
            yield from (process_record(stage_name, config, r, inputs) for r in records)
            return
        largest_first = sorted(records, key=lambda r: (-len(r.objects), -r.width * r.height))
        work = [(process_record, r) for r in largest_first]
    from joblib import Parallel, delayed, parallel_config
    # loky: joblib's default, or whatever backend the caller set with joblib.parallel_config
    with parallel_config(backend="dask") if backend == "dask" else nullcontext():
        for result in Parallel(n_jobs=jobs if backend == "loky" else -1, return_as="generator_unordered")(
                delayed(fn)(stage_name, config, item, inputs) for fn, item in work):
            if isinstance(result, list):
                yield from result
            else:
                yield result


def run_stage(stage_name: str, dataset: Dataset, split: str, cache: str | os.PathLike, *,
              config: Any = None, jobs: int = 1, force: bool = False, on_error: str = "fail",
              progress: bool = True, log: Callable[[str], None] = lambda s: None,
              shard: tuple[int, int] | None = None, backend: str = "loky",
              retry_failed: bool = False) -> RunSummary:
    """Run one stage over a split into ``<cache>/<dataset>/<split>/<stage>/<key>.h5`` (``key``:
    :func:`cache_key`), then point ``<stage>.h5`` (the store every reader opens) at it.

    ``shard=(i, n)`` runs only the split's images ``i, i + n, i + 2n, ...`` (a deterministic
    shard: every image in exactly one of the n) into ``<stage>/<key>.shard-<i>-of-<n>.h5``;
    :func:`merge_shards` joins the n shard stores into the stage's store.

    Resumes an interrupted run (only unfinished images are redone), says there is nothing to
    do when the store is complete for the same configuration, and starts over with
    ``force``. ``retry_failed`` redoes only the images recorded as failed in the finished store
    and keeps every other image as it is (upstream stores may have been retried meanwhile; their
    configuration must be the same). ``on_error="fail"`` stops at the first bad image with a :class:`DataError`
    naming the file (everything finished so far stays in the journal); ``"skip"`` records it
    as failed and goes on.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, not {on_error!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if force and retry_failed:
        raise ValueError("force recomputes every image and retry_failed only the failed ones: pass one")
    stage = get_stage(stage_name)
    config = config if config is not None else stage.config_class()
    inputs, key, out = stage_target(stage_name, config, dataset, split, cache)
    if shard is not None:
        out = shard_path(out, *check_shard(shard))
    stage.check(config)
    with run_lock(out):
        summary = _run_locked(stage_name, dataset, split, out, config=config, jobs=jobs, force=force,
                              on_error=on_error, progress=progress, log=log, inputs=inputs, shard=shard,
                              backend=backend, retry_failed=retry_failed)
    if shard is None:
        summary.current = store_path(cache, dataset.name, split, stage_name)
        point_current(summary.current, out)
    return summary


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
    return i, n


def shard_path(out: Path, i: int, n: int) -> Path:
    """Shard i of n of the store ``out``: ``<key>.shard-<i>-of-<n>.h5`` beside it."""
    return out.with_name(f"{out.stem}.shard-{i}-of-{n}{out.suffix}")


def _shard_keys(folder: Path, n: int) -> list[str]:
    """Cache keys with shard stores (finished or in progress) of n shards in ``folder``."""
    names = [p.name for p in folder.glob(f"*.shard-*-of-{n}.h5*")] if folder.is_dir() else []
    return sorted({name.split(".shard-")[0] for name in names})


def merge_shards(stage_name: str, dataset: Dataset, split: str, cache: str | os.PathLike, n: int,
                 *, key: str | None = None, force: bool = False, progress: bool = False,
                 log: Callable[[str], None] = lambda s: None) -> Path:
    """Join the n finished shard stores of a stage into its store (entries copied as stored,
    in split order), remove the shards and point ``<stage>.h5`` at the result. The shards must
    be complete and made from the same stage, data, split, configuration and upstream stores.
    ``key``: the configuration's cache key; by default the only one with shards of n."""
    current = store_path(cache, dataset.name, split, stage_name)
    if key is None:
        keys = _shard_keys(current.with_suffix(""), n)
        if len(keys) != 1:
            raise StoreError(f"{current.with_suffix('')}: " + (
                f"no shard stores of {n} shards; run `pseudolabel {stage_name} --split {split} --shard I/{n}` "
                f"for I = 0..{n - 1} first" if not keys else
                f"shard stores of {len(keys)} configurations ({', '.join(keys)}); pass --key"))
        key = keys[0]
    out = keyed_store_path(cache, dataset.name, split, stage_name, key)
    shards = [shard_path(out, i, n) for i in range(n)]
    with run_lock(out):
        _merge_locked(stage_name, dataset, split, n, out, shards, force, progress, log)
    point_current(current, out)
    return out


def _merge_locked(stage_name, dataset, split, n, out, shards, force, progress, log) -> None:
    """Merge under the lock of ``out`` (see :func:`merge_shards`)."""
    if out.exists() and not force:
        if not any(p.exists() for p in shards):
            log(f"{out} is complete: nothing to merge")
            return
        raise StoreError(f"{out} already exists; use --force to replace it with the merged shards")
    missing = [p.name for p in shards if not p.exists()]
    if missing:
        raise StoreError(f"cannot merge {out.name}: shard store(s) {', '.join(missing)} not finished in "
                         f"{out.parent}; run `pseudolabel {stage_name} --split {split} --shard I/{n}` "
                         f"for each missing shard first")
    files = [_open_checked(p) for p in shards]
    try:
        metas = [read_meta(f) for f in files]
        for p, m in zip(shards[1:], metas[1:]):
            diff = _mismatch(m, metas[0])
            if diff:
                raise StoreError(f"{p}: made with a different {', '.join(diff)} than {shards[0].name}; "
                                 f"rerun that shard with the same options")
        where = {}
        for f in files:
            ids = [s.decode() if isinstance(s, bytes) else s for s in f["index/ids"][()]]
            for j, image_id in enumerate(ids):
                where[image_id] = (f, j)
        ids = [r.image_id for r in dataset.records(split)]
        lost = [i for i in ids if i not in where]
        if lost:
            raise StoreError(f"the shards of {out.name} do not cover the split ({len(lost)} images "
                             f"missing, e.g. {lost[0]}); were they made with another --shard n?")

        bar = Progress(len(ids), f"merge {stage_name} [{split}]", enabled=progress)

        def entries():
            for image_id in ids:
                bar.update()
                f, j = where[image_id]
                if not f["index/done"][j]:
                    error = f["index/error"][j]
                    yield image_id, None, error.decode() if isinstance(error, bytes) else error
                    continue
                entry = read_entry(f["images"][image_id])
                entry["num_objects"] = int(f["index/num_objects"][j])
                yield image_id, entry, ""

        meta = {k: v for k, v in metas[0].items() if k not in
                ("format", "format_version", "num_images", "num_done", "num_failed", "complete", "shard")}
        meta["config"] = json.dumps(meta["config"], sort_keys=True)
        meta["created"] = min(m["created"] for m in metas)
        meta["completed"] = _completed()
        runs = [{**r, "shard": m.get("shard", "")} for m in metas for r in json.loads(m.get("run_log", "[]"))]
        meta["run_log"] = json.dumps(runs + [{**_versions(), "merge": n, "start": meta["completed"], "end": _now(),
                                              "host": socket.gethostname(), "pid": os.getpid()}])
        tmp = out.with_name(out.name + ".tmp")
        write_store(tmp, meta, ids, entries(), metas[0]["format"])
        bar.close()
    finally:
        for f in files:
            f.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    for p in shards:
        p.unlink()
    log(f"merged {n} shards into {out}")
    return out


def _stored_entries(f) -> Callable[[str], dict[str, Any]]:
    """``entry(image_id)``: a done image's entry as the finished store ``f`` holds it
    (compressed chunks copied as they are)."""
    ids = [s.decode() if isinstance(s, bytes) else s for s in f["index/ids"][()]]
    counts = dict(zip(ids, f["index/num_objects"][()].tolist()))

    def entry(image_id: str) -> dict[str, Any]:
        out = read_entry(f["images"][image_id])
        out["num_objects"] = int(counts[image_id])
        return out
    return entry


def _run_locked(stage_name: str, dataset: Dataset, split: str, out: Path, *, config: Any, jobs: int,
                force: bool, on_error: str, progress: bool, log: Callable[[str], None],
                inputs: dict[str, str], shard: tuple[int, int] | None = None, backend: str = "loky",
                retry_failed: bool = False) -> RunSummary:
    stage = get_stage(stage_name)
    jobs = resolve_jobs(jobs)
    journal = Journal(partial_dir(out))
    want = _identity(stage_name, dataset, split, config, inputs)
    records = dataset.records(split)
    if shard is not None:
        records = records[shard[0]::shard[1]]
        want["shard"] = f"{shard[0]}/{shard[1]}"
    ids = [r.image_id for r in records]
    summary = RunSummary(stage=stage_name, split=split, store=out, images=len(records), output=stage.output)

    if force:
        journal.remove()
        out.unlink(missing_ok=True)
    previous = None       # the finished store whose failed images this run redoes
    if out.exists():
        try:
            with _open_checked(out) as f:
                have = read_meta(f)
                have_ids = [s.decode() if isinstance(s, bytes) else s for s in f["index/ids"][()]]
                have_done = {i for i, d in zip(have_ids, f["index/done"][()]) if d}
        except StoreError as exc:
            raise StoreError(f"{exc}; rerun with --force to recompute it") from None
        have["config"] = json.dumps(have["config"], sort_keys=True)
        diff = _mismatch(have, want, same_upstream_config=retry_failed) + (["image ids"] if have_ids != ids else [])
        if diff:
            raise StoreError(f"{out} already exists but was made with a different "
                             f"{', '.join(diff)}; use --force to overwrite it")
        summary.done, summary.failed = have["num_done"], have["num_failed"]
        if not (retry_failed and have["num_failed"]):
            summary.nothing_to_do = True
            return summary
        previous = {**have, "done": have_done}
        summary.retried = len(ids) - len(have_done)
        log(f"retrying the {summary.retried} failed image(s) of {out}; the {len(have_done)} done are kept")

    if journal.exists():
        manifest = journal.manifest()
        diff = _mismatch(manifest, want, same_upstream_config=previous is not None) + (
            ["image ids"] if manifest.get("ids") != ids else [])
        if diff:
            raise StoreError(f"{journal.dir} holds an interrupted run with a different "
                             f"{', '.join(diff)}; use --force to start over")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        journal.start({**want, "ids": ids, "created": previous["created"] if previous else _now(),
                       "package_version": __version__, "host": socket.gethostname()})
    finished = journal.finished()
    if previous is not None:
        # a retry redoes what failed before and was not redone by an interrupted retry
        finished = {i: "done" for i in ids if i in previous["done"] or finished.get(i) == "done"}
        summary.resumed = sum(i not in previous["done"] for i in finished)
    else:
        summary.resumed = sum(i in finished for i in ids)
    session = journal.start_session({**_versions(), "start": _now(), "host": socket.gethostname(),
                                     "pid": os.getpid(), "jobs": jobs, "backend": backend,
                                     "resumed": summary.resumed, **({"retry_failed": summary.retried}
                                                                    if previous else {})})
    if summary.resumed:
        log(f"resuming {out}: {summary.resumed} of {summary.retried or len(ids)} images already finished")
    todo = [r for r in records if r.image_id not in finished]

    # 1. annotation problems are known before any work: stop at once, or record them.
    bad = [r for r in todo if isinstance(r, BadRecord)]
    if bad and on_error == "fail":
        raise DataError(bad[0].path, bad[0].problem + (f" (and {len(bad) - 1} more bad annotation(s); "
                        f"--on-error skip records them as failed)" if len(bad) > 1 else ""), bad[0].image_id)
    for r in bad:
        journal.put_failure(r.image_id, r.reason)
        summary.failures.append((r.image_id, r.reason))
    good = [r for r in todo if isinstance(r, ImageRecord)]

    # 2. process, committing each image to the journal as it arrives (in split order).
    start = time.perf_counter()
    kept = _Kept(KEEP_BYTES)
    bar = Progress(len(good), f"{stage_name} [{split}]", enabled=progress)
    for status, image_id, *rest in _map(stage_name, config, good, jobs, inputs, backend,
                                        [r for r in records if isinstance(r, ImageRecord)]):
        if status == "failed":
            path, problem = rest
            if on_error == "fail":
                bar.close()
                raise DataError(path, problem, image_id)
            journal.put_failure(image_id, f"{path}: {problem}")
            summary.failures.append((image_id, f"{path}: {problem}"))
        else:
            entry, counts = rest
            journal.put(image_id, entry)
            kept.add(image_id, entry)
            summary.objects += entry["num_objects"]
            for key, value in counts.items():
                summary.counts[key] = summary.counts.get(key, 0) + int(value)
        summary.processed += 1
        bar.update()
    bar.close()
    summary.processed += len(bad)

    # 3. assemble the final store under a temporary name, then rename it into place.
    manifest = journal.manifest()
    summary.wall_s = time.perf_counter() - start
    journal.end_session(session, {"end": _now(), "processed": summary.processed, "objects": summary.objects,
                                  "failed": len(summary.failures), "wall_s": round(summary.wall_s, 3)})
    sessions = journal.sessions()
    if previous is not None:
        before = json.loads(previous.get("run_log", "[]"))
        sessions = before + [s for s in sessions if s not in before]
    meta = {**want, "package_version": __version__, "created": manifest["created"],
            "completed": _completed(), "class_names": json.dumps(list(VOC_CLASSES)),
            "run_log": json.dumps(sessions)}
    tmp = out.with_name(out.name + ".tmp")
    in_journal = journal.finished()
    with _open_checked(out) if previous is not None else nullcontext() as old:
        stored = _stored_entries(old) if old is not None else None

        def entries():
            for i in ids:
                if i in kept:
                    yield i, kept.pop(i), ""
                elif i in in_journal:
                    yield i, *journal.get(i)
                else:                                   # kept from the store being retried
                    yield i, stored(i), ""
        write_store(tmp, meta, ids, entries(), FORMATS[stage.output])
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    journal.remove()
    summary.wall_s = time.perf_counter() - start
    with _open_checked(out) as f:
        summary.done, summary.failed = int(f.attrs["num_done"]), int(f.attrs["num_failed"])
    return summary
