"""What is in an output root, and removing what is no longer needed (``cache list``, ``cache
clean``). Where things live is ``layout.py``'s business; what a store holds, the store's index.
Nothing that a live run holds the lock of is ever removed.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import StoreError
from ..core.output_root import OutputRoot, lock_path
from ..store.index import StoreIndex
from ..store.journal import MANIFEST, lock_held


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
    options: dict | None = None    # the configuration's options that differ from the stage's defaults

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        return d


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _counts(entry: CacheEntry) -> None:
    try:
        index = StoreIndex.open(entry.path)
    except StoreError:
        entry.completed = "unreadable"
        return
    entry.images, entry.done, entry.failed = len(index.ids), index.num_done, index.num_failed
    entry.completed = str(index.meta.get("completed", ""))
    entry.config = json.dumps(index.meta.get("config", ""), sort_keys=True)
    entry.options = non_defaults(entry.stage, index.meta.get("config"))


def non_defaults(stage: str, config) -> dict | None:
    """The options of a stored configuration that differ from its stage's defaults today (``{}``:
    all defaults); None when the stage or configuration is unknown."""
    from ..core.config import config_to_mapping
    from ..stages import STAGES
    if stage not in STAGES or not isinstance(config, dict):
        return None
    defaults = config_to_mapping(STAGES[stage].config_class())
    return {k: v for k, v in sorted(config.items()) if defaults.get(k, object()) != v}


def scan(cache: str | os.PathLike) -> list[CacheEntry]:
    """Every store, shard and interrupted run under the output root, sorted by path."""
    out = []
    for found in OutputRoot(cache).scan():
        entry = CacheEntry(found.dataset, found.split, found.stage, found.key, found.kind, found.path,
                           current=found.current, in_use=lock_held(found.store), bytes=_size(found.path))
        if found.kind != "partial":
            _counts(entry)
        out.append(entry)
    return out


def ours(entry: CacheEntry) -> bool:
    """Whether an entry is verifiably pseudolabel's: a store or shard whose index reads, or a
    journal with a manifest. Nothing else under a folder given as ``--cache`` is ever removed."""
    if entry.kind == "partial":
        return (entry.path / MANIFEST).is_file()
    return entry.completed not in ("", "unreadable")


def clean(cache: str | os.PathLike, *, everything: bool = False, partial: bool = False,
          stage: str | None = None, dry_run: bool = False) -> tuple[list[CacheEntry], list[Path]]:
    """Remove superseded stores (not the current one of their stage); with ``partial`` also
    interrupted runs and shard stores; with ``everything`` all of it, links included. Entries in
    use by a live run, and anything that is not verifiably a pseudolabel store, journal or link
    (:func:`ours`), are kept. Returns (removed entries, removed links)."""
    removed, links = [], []
    entries = scan(cache)
    busy = {e.path.resolve() for e in entries if e.in_use}
    for e in entries:
        if e.in_use or (stage and e.stage != stage) or not ours(e):
            continue
        if everything or (e.kind == "store" and not e.current) or (partial and e.kind in ("shard", "partial")):
            removed.append(e)
            if not dry_run:
                shutil.rmtree(e.path) if e.path.is_dir() else e.path.unlink()
                lock_path(e.path).unlink(missing_ok=True)
    for link in OutputRoot(cache).links():
        if (stage and link.stem != stage) or link.resolve() in busy:
            continue
        if not link.exists() or everything:
            links.append(link)
            if not dry_run:
                link.unlink()
    return removed, links
