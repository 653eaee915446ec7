"""Joining the n shard stores of one configuration (``--shard I/N`` runs) into its store."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Callable

from ..catalog import Dataset
from ..core.errors import StoreError
from ..core.output_root import OutputRoot, point_current, shard_keys, shard_path
from ..core.progress import Progress
from ..store.index import StoreFile
from ..store.journal import run_lock
from ..store.schema import COUNT_ATTRS
from ..store.writer import write_store
from .commit import completed, now, versions
from .identity import differences


def merge_shards(stage_name: str, dataset: Dataset, split: str, cache: str | os.PathLike, n: int,
                 *, key: str | None = None, force: bool = False, progress: bool = False,
                 log: Callable[[str], None] = lambda s: None) -> Path:
    """Join the n finished shard stores of a stage into its store (entries copied as stored,
    in split order), remove the shards and point ``<stage>.h5`` at the result. The shards must
    be complete and made from the same stage, data, split, configuration and upstream stores.
    ``key``: the configuration's cache key; by default the only one with shards of n."""
    root = OutputRoot(cache)
    current = root.current(dataset.name, split, stage_name)
    if key is None:
        keys = shard_keys(current.with_suffix(""), n)
        if len(keys) != 1:
            raise StoreError(f"{current.with_suffix('')}: " + (
                f"no shard stores of {n} shards; run `pseudolabel {stage_name} --split {split} --shard I/{n}` "
                f"for I = 0..{n - 1} first" if not keys else
                f"shard stores of {len(keys)} configurations ({', '.join(keys)}); pass --key"))
        key = keys[0]
    out = root.keyed(dataset.name, split, stage_name, key)
    with run_lock(out):
        _merge_locked(stage_name, dataset, split, n, out, force, progress, log)
    point_current(current, out)
    return out


def _merge_locked(stage_name, dataset, split, n, out: Path, force, progress, log) -> None:
    shards = [shard_path(out, i, n) for i in range(n)]
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
    files: list[StoreFile] = []
    try:
        for p in shards:
            files.append(StoreFile(p))
        _write_merged(stage_name, dataset, split, n, out, files, progress)
    finally:
        for f in files:
            f.close()
    for p in shards:
        p.unlink()
    log(f"merged {n} shards into {out}")


def _write_merged(stage_name, dataset, split, n, out: Path, files: list[StoreFile], progress) -> None:
    metas = [f.index.meta for f in files]
    for f in files[1:]:
        diff = differences(f.index.meta, metas[0])
        if diff:
            raise StoreError(f"{f.path}: made with a different {', '.join(diff)} than {files[0].path.name}; "
                             f"rerun that shard with the same options")
    where = {image_id: f for f in files for image_id in f.index.ids}
    ids = [r.image_id for r in dataset.records(split)]
    lost = [i for i in ids if i not in where]
    if lost:
        raise StoreError(f"the shards of {out.name} do not cover the split ({len(lost)} images "
                         f"missing, e.g. {lost[0]}); were they made with another --shard n?")
    bar = Progress(len(ids), f"merge {stage_name} [{split}]", enabled=progress)

    def entries():
        for image_id in ids:
            bar.update()
            f = where[image_id]
            j = f.index.position[image_id]
            if not f.index.done[j]:
                yield image_id, None, f.index.errors[j]
            else:
                yield image_id, f.entry(image_id), ""

    meta = {k: v for k, v in metas[0].items() if k not in (*COUNT_ATTRS, "shard")}
    meta["config"] = json.dumps(meta["config"], sort_keys=True)
    meta["created"] = min(m["created"] for m in metas)
    meta["completed"] = completed()
    runs = [{**r, "shard": m.get("shard", "")} for m in metas for r in json.loads(m.get("run_log", "[]"))]
    meta["run_log"] = json.dumps(runs + [{**versions(), "merge": n, "start": meta["completed"], "end": now(),
                                          "host": socket.gethostname(), "pid": os.getpid()}])
    write_store(out, meta, ids, entries(), metas[0]["format"])
    bar.close()
