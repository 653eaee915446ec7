"""What a store is made from (its identity) and where a run of it writes (its target).

A store's identity is the stage and its code revision, the dataset (name, root, kind), the split,
the stage's configuration (canonical JSON) and the upstream stores it reads, each pinned by its
cache key and completion time. Its **cache key** (12 hex digits of SHA-256 over the
configuration, the revision and the upstream keys) names the file, ``<stage>/<key>.h5``: the one
hash by which stores are found and reused. A resume, a rerun or a merge must match the identity
exactly (:func:`differences`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import Dataset
from ..core.classes import VOC, LabelSpace
from ..core.config import config_json
from ..core.errors import StoreError
from ..core.output_root import OutputRoot, shard_path
from ..stages import get_stage
from ..store.index import StoreIndex


def cache_key(config: Any, upstream_keys: dict[str, str], revision: int = 1) -> str:
    """12 hex digits of SHA-256 over the stage's configuration, its revision (``Stage.revision``;
    1 adds nothing, so older stores keep their keys) and its upstream stores' keys. Same
    configuration and code on the same inputs, same key: the store is reused; any change anywhere
    upstream, a new key."""
    return _key(config_json(config), upstream_keys, revision)


def _key(config: str, upstream_keys: dict[str, str], revision: int) -> str:
    payload = {"config": json.loads(config), "inputs": upstream_keys}
    if revision != 1:
        payload["revision"] = revision
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _config_hash(config: str) -> str:
    """The format-1 attribute ``config_hash``, written for readers of the store (provenance only:
    pseudolabel matches stores by cache key and configuration, never by this)."""
    return hashlib.sha256(config.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Upstream:
    """A finished store a stage reads, pinned by its cache key and completion time."""

    name: str
    path: str
    cache_key: str
    config_hash: str
    completed: str

    @classmethod
    def of(cls, name: str, path: str) -> "Upstream":
        meta = StoreIndex.open(path).meta
        if "cache_key" not in meta:
            raise StoreError(f"{path}: written before stores had cache keys; recompute the '{name}' stage "
                             f"with --force")
        return cls(name, path, meta["cache_key"], meta["config_hash"], meta["completed"])

    def record(self) -> dict[str, str]:
        return {"path": self.path, "config_hash": self.config_hash, "completed": self.completed,
                "cache_key": self.cache_key}


@dataclass(frozen=True)
class Identity:
    stage: str
    revision: int
    dataset: str
    dataset_root: str
    dataset_kind: str
    split: str
    config: str                              # canonical JSON (config.config_json)
    inputs: tuple[Upstream, ...] = ()
    shard: str | None = None                 # "I/N" for a shard store
    labels: LabelSpace = VOC                 # the dataset's classes
    annotations: str | None = None           # the annotation file of a dataset read from one (COCO)

    @property
    def key(self) -> str:
        return _key(self.config, {u.name: u.cache_key for u in self.inputs}, self.revision)

    def attrs(self) -> dict[str, Any]:
        """The store's identity attributes (``docs/STORE.md``, root attributes)."""
        out = {"stage": self.stage, "stage_revision": self.revision, "dataset": self.dataset,
               "dataset_root": self.dataset_root, "dataset_kind": self.dataset_kind, "split": self.split,
               "config": self.config, "config_hash": _config_hash(self.config),
               "inputs": json.dumps({u.name: u.record() for u in self.inputs}, sort_keys=True),
               "cache_key": self.key}
        if self.shard is not None:
            out["shard"] = self.shard
        if self.annotations is not None:
            out["dataset_annotations"] = self.annotations
        out.update(self.labels.attrs())
        return out


def differences(have: dict[str, Any], want: dict[str, Any], *, same_upstream_config: bool = False) -> list[str]:
    """What differs between two identities (store attributes or a journal manifest), in words.
    ``same_upstream_config``: upstream stores count as the same when their cache keys are (a
    retried upstream store has a new completion time but the same results for every image that
    was done before)."""
    def config(identity):
        value = identity.get("config")
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)

    def upstream(identity):
        inputs = json.loads(identity.get("inputs", "{}"))
        if same_upstream_config:
            inputs = {k: {f: v.get(f) for f in ("path", "cache_key")} for k, v in inputs.items()}
        return inputs

    out = [word for key, word in (("stage", "stage"), ("dataset_root", "dataset"), ("split", "split"))
           if have.get(key) != want.get(key)]
    if config(have) != config(want):
        out.append("configuration")
    if upstream(have) != upstream(want):
        out.append("upstream stores")
    if "class_names" in have and "class_names" in want and (
            LabelSpace.from_attrs(have) != LabelSpace.from_attrs(want)):
        out.append("classes")
    return out


@dataclass(frozen=True)
class Target:
    """Where a run of one configuration writes, and what it reads."""

    identity: Identity
    store: Path                              # <stage>/<key>.h5, or a shard store
    current: Path | None                     # <stage>.h5 to point at the store (None for a shard)
    inputs: dict[str, str]                   # upstream stage -> the keyed path of its store


def upstream_paths(stage_name: str, config: Any, dataset: Dataset, split: str, root: OutputRoot) -> dict[str, str]:
    """Paths of the finished stores a stage reads, or a StoreError saying what to run first."""
    paths = {}
    for name in get_stage(stage_name).inputs(config):
        get_stage(name)
        path = root.current(dataset.name, split, name)
        if not path.exists():
            raise StoreError(f"stage '{stage_name}' reads the '{name}' store, and {path} is not finished; "
                             f"run `pseudolabel {name} --split {split}` with the same --data-root and --cache first")
        paths[name] = str(path.resolve())
    return paths


def resolve_target(stage_name: str, config: Any, dataset: Dataset, split: str, cache,
                   shard: tuple[int, int] | None = None) -> Target:
    """The identity of a run of ``config`` on ``dataset``/``split``, its store path and inputs."""
    root = OutputRoot(cache)
    inputs = upstream_paths(stage_name, config, dataset, split, root)
    identity = Identity(stage=stage_name, revision=get_stage(stage_name).revision, dataset=dataset.name,
                        dataset_root=str(dataset.root), dataset_kind=dataset.kind, split=split,
                        config=config_json(config), inputs=tuple(Upstream.of(k, v) for k, v in inputs.items()),
                        shard=f"{shard[0]}/{shard[1]}" if shard is not None else None, labels=dataset.labels,
                        annotations=dataset.annotation_file(split))
    store = root.keyed(dataset.name, split, stage_name, identity.key)
    if shard is not None:
        return Target(identity, shard_path(store, *shard), None, inputs)
    return Target(identity, store, root.current(dataset.name, split, stage_name), inputs)
