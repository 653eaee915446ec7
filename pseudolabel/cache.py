"""What is in an output root, and removing what is no longer needed.

Layout (``docs/CACHE.md``)::

    <cache>/<dataset>/<split>/<stage>.h5                 link to the current store of <stage>
    <cache>/<dataset>/<split>/<stage>/<key>.h5           the store of one configuration
    <cache>/<dataset>/<split>/<stage>/<key>.h5.partial/  journal of an interrupted run
    <cache>/<dataset>/<split>/<stage>/<key>.shard-I-of-N.h5   a finished shard
    <cache>/<dataset>/<split>/<stage>/<key>.h5.lock      held (flock) while a run writes

``key`` is the run's cache key (``runner.cache_key``: its configuration and its upstream
stores' keys). Nothing that a live run holds the lock of is ever removed.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KINDS = ("store", "shard", "partial")


@dataclass
class CacheEntry:
    dataset: str
    split: str
    stage: str
    key: str
    kind: str            # store | shard | partial
    path: Path
    current: bool        # <stage>.h5 points at it
    in_use: bool         # a live run holds its lock
    bytes: int
    images: int | None = None
    done: int | None = None
    failed: int | None = None
    completed: str = ""
    config: str = ""

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        return d


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _locked(store: Path) -> bool:
    """A live run holds ``<store>.lock``."""
    lock = Path(str(store) + ".lock")
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)          # closing drops the lock we may have taken
    return False


def _meta(entry: CacheEntry) -> None:
    import h5py
    try:
        with h5py.File(entry.path, "r") as f:
            a = f.attrs
            entry.images, entry.done, entry.failed = (int(a.get(k, -1)) for k in ("num_images", "num_done", "num_failed"))
            entry.completed = str(a.get("completed", ""))
            entry.config = str(a.get("config", ""))
    except (OSError, ValueError):
        entry.completed = "unreadable"


def scan(cache: str | os.PathLike) -> list[CacheEntry]:
    """Every store, shard and interrupted run under the output root, sorted by path."""
    root = Path(cache)
    out = []
    for stage_dir in sorted(p for p in root.glob("*/*/*") if p.is_dir()):
        dataset, split, stage = stage_dir.relative_to(root).parts
        link = stage_dir.parent / f"{stage}.h5"
        current = link.resolve() if link.is_symlink() and link.exists() else None
        for path in sorted(stage_dir.iterdir()):
            name = path.name
            if name.endswith(".h5.partial") and path.is_dir():
                kind, store = "partial", path.with_name(name[:-len(".partial")])
            elif name.endswith(".h5") and ".shard-" in name:
                kind, store = "shard", path
            elif name.endswith(".h5"):
                kind, store = "store", path
            else:
                continue
            entry = CacheEntry(dataset, split, stage, name.split(".")[0], kind, path,
                               current=kind == "store" and current == path.resolve(),
                               in_use=_locked(store), bytes=_size(path))
            if kind != "partial":
                _meta(entry)
            out.append(entry)
    return out


def clean(cache: str | os.PathLike, *, everything: bool = False, partial: bool = False,
          stage: str | None = None, dry_run: bool = False) -> tuple[list[CacheEntry], list[Path]]:
    """Remove superseded stores (not the current one of their stage); with ``partial`` also
    interrupted runs and shard stores; with ``everything`` all of it, links included. Entries in
    use by a live run are kept. Returns (removed entries, removed links)."""
    removed, links = [], []
    entries = scan(cache)
    busy = {e.path.resolve() for e in entries if e.in_use}
    for e in entries:
        if e.in_use or (stage and e.stage != stage):
            continue
        if everything or (e.kind == "store" and not e.current) or (partial and e.kind in ("shard", "partial")):
            removed.append(e)
            if not dry_run:
                shutil.rmtree(e.path) if e.path.is_dir() else e.path.unlink()
                Path(str(e.path) + ".lock").unlink(missing_ok=True)
    root = Path(cache)
    for link in root.glob("*/*/*.h5"):
        if not link.is_symlink() or (stage and link.stem != stage) or link.resolve() in busy:
            continue
        if not link.exists() or everything:
            links.append(link)
            if not dry_run:
                link.unlink()
    return removed, links
