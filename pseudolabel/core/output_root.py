"""The output root (``--cache``): the one place that knows where things live under it.

::

    <cache>/<dataset>/<split>/<stage>.h5                      link to the stage's current store
    <cache>/<dataset>/<split>/<stage>/<key>.h5                the store of one configuration
    <cache>/<dataset>/<split>/<stage>/<key>.h5.partial/       journal of a run in progress
    <cache>/<dataset>/<split>/<stage>/<key>.h5.lock           held (flock) while a run writes the store
    <cache>/<dataset>/<split>/<stage>/<key>.h5.tmp            the finished store just before its rename
    <cache>/<dataset>/<split>/<stage>/<key>.shard-I-of-N.h5   shard I of N (``--shard I/N``), until merged
    <cache>/<dataset>/<split>/export/<stage>[-<fmt>]/         default folder of ``export``
    <cache>/<dataset>/<split>/detector/                       default folder of ``train-detector``
    <cache>/<dataset>/<split>/report/                         default folder of ``report``
    <cache>/demo/dataset/, <cache>/demo/stores/, <cache>/demo/overlay.png    ``pseudolabel demo``

``key`` is the store's cache key (``runner.identity``), ``dataset`` the data root's folder name.
Documented for users in ``docs/CACHE.md``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import StoreError

SUFFIX = ".h5"
_SHARD = re.compile(r"^(?P<key>[^.]+)\.shard-(?P<i>\d+)-of-(?P<n>\d+)\.h5$")


@dataclass(frozen=True)
class OutputRoot:
    """Paths under one output root."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    def split_dir(self, dataset: str, split: str) -> Path:
        return self.root / dataset / split

    def current(self, dataset: str, split: str, stage: str) -> Path:
        """``<stage>.h5``: the link every reader of "the grabcut store" opens."""
        return self.split_dir(dataset, split) / f"{stage}{SUFFIX}"

    def keyed(self, dataset: str, split: str, stage: str, key: str) -> Path:
        """``<stage>/<key>.h5``: the store of one configuration."""
        return self.split_dir(dataset, split) / stage / f"{key}{SUFFIX}"

    def export_dir(self, dataset: str, split: str, stage: str, fmt: str = "png") -> Path:
        """``export/<stage>`` for PNGs, ``export/<stage>-<fmt>`` for the other formats."""
        return self.split_dir(dataset, split) / "export" / (stage if fmt == "png" else f"{stage}-{fmt}")

    def report_dir(self, dataset: str, split: str) -> Path:
        return self.split_dir(dataset, split) / "report"

    def detector_dir(self, dataset: str, split: str) -> Path:
        return self.split_dir(dataset, split) / "detector"

    def demo_dir(self) -> Path:
        """``demo/``: what ``pseudolabel demo`` writes (its dataset, its output root, its picture)."""
        return self.root / "demo"

    def demo_dataset(self) -> Path:
        return self.demo_dir() / "dataset"

    def demo_stores(self) -> "OutputRoot":
        """The demo's own output root (its stores under ``demo/stores/<dataset>/<split>/``)."""
        return OutputRoot(self.demo_dir() / "stores")

    def demo_overlay(self) -> Path:
        return self.demo_dir() / "overlay.png"

    def find_store(self, dataset: str, split: str, spec: str, stage: str | None = None) -> Path:
        """The store a user names with ``--store``: a path to a store file, or the cache key of a
        store of ``dataset``/``split`` under this root (of ``stage`` when given; a unique prefix of
        at least 4 digits will do, as ``cache list`` shows them). A StoreError says what was
        looked for otherwise."""
        path = Path(spec)
        if path.is_file():
            return path
        where = self.split_dir(dataset, split)
        found = []
        if re.fullmatch(r"[0-9a-f]{4,12}", spec) and where.is_dir():
            found = sorted(p for p in where.glob(f"{stage or '*'}/{spec}*{SUFFIX}")
                           if (parse(p) or ("", ""))[0] == "store")
        if len(found) == 1:
            return found[0]
        what = f"{stage} store" if stage else "store"
        if found:
            raise StoreError(f"{spec}: the key of {len(found)} {what}s under {where} "
                             f"({', '.join(p.parent.name + '/' + p.name for p in found)}); give more digits")
        raise StoreError(f"{spec}: neither a store file nor the cache key of a {what} of {dataset} [{split}] under "
                         f"{self.root}; `pseudolabel cache list` shows the keys")

    def scan(self) -> Iterator["Found"]:
        """Every store, shard and journal under the root, in path order (for ``cache list``)."""
        for stage_dir in sorted(p for p in self.root.glob("*/*/*") if p.is_dir()):
            dataset, split, stage = stage_dir.relative_to(self.root).parts
            if stage in ("export", "detector", "report"):
                continue
            link = self.current(dataset, split, stage)
            current = link.resolve() if link.is_symlink() and link.exists() else None
            for path in sorted(stage_dir.iterdir()):
                found = parse(path)
                if found is not None:
                    yield Found(dataset, split, stage, found[0], found[1], path,
                                current=found[0] == "store" and current == path.resolve())

    def links(self) -> Iterator[Path]:
        """Every ``<stage>.h5`` link under the root that is one of ours: a relative link into its
        own ``<stage>/`` folder (``<stage>/<key>.h5``)."""
        for p in self.root.glob(f"*/*/*{SUFFIX}"):
            if p.is_symlink() and Path(os.readlink(p)).parent == Path(p.stem):
                yield p


@dataclass(frozen=True)
class Found:
    """One entry of the output root: ``kind`` is ``store``, ``shard`` or ``partial`` (a journal)."""

    dataset: str
    split: str
    stage: str
    kind: str
    key: str
    path: Path
    current: bool = False

    @property
    def store(self) -> Path:
        """The store this entry belongs to (whose lock guards it)."""
        return path_of_journal(self.path) if self.kind == "partial" else self.path


def parse(path: Path) -> tuple[str, str] | None:
    """``(kind, key)`` of a file or folder inside ``<stage>/``, or None for anything else (locks,
    temporary files)."""
    name = path.name
    if name.endswith(SUFFIX + ".partial") and path.is_dir():
        return "partial", name.split(".")[0]
    shard = _SHARD.match(name)
    if shard:
        return "shard", shard["key"]
    if name.endswith(SUFFIX) and name.count(".") == 1 and path.is_file() and not path.is_symlink():
        return "store", name[: -len(SUFFIX)]
    return None


def journal_dir(store: str | os.PathLike) -> Path:
    """The journal of a run in progress: ``<store>.partial/``."""
    return Path(str(store) + ".partial")


def path_of_journal(journal: Path) -> Path:
    return Path(str(journal)[: -len(".partial")])


def lock_path(store: str | os.PathLike) -> Path:
    return Path(str(store) + ".lock")


def tmp_path(store: str | os.PathLike) -> Path:
    """Where a finished store is written before it is renamed into place."""
    store = Path(store)
    return store.with_name(store.name + ".tmp")


def shard_path(store: Path, i: int, n: int) -> Path:
    """Shard i of n of the store ``<key>.h5``: ``<key>.shard-<i>-of-<n>.h5`` beside it."""
    return store.with_name(f"{store.stem}.shard-{i}-of-{n}{store.suffix}")


def shard_keys(stage_dir: Path, n: int) -> list[str]:
    """Cache keys with shard stores (finished or in progress) of n shards in ``stage_dir``."""
    if not stage_dir.is_dir():
        return []
    keys = set()
    for p in stage_dir.glob(f"*.shard-*-of-{n}{SUFFIX}*"):
        shard = _SHARD.match(p.name.removesuffix(".partial"))
        if shard:
            keys.add(shard["key"])
    return sorted(keys)


def point_current(current: Path, target: Path) -> None:
    """Make ``current`` (``<stage>.h5``) a relative link to ``target``, atomically (nothing is
    written when it already is one)."""
    link = os.path.relpath(target, current.parent)
    if current.is_symlink() and os.readlink(current) == link:
        return
    tmp = current.with_name(current.name + ".link-tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(link, tmp)
    os.replace(tmp, current)
