"""Committing a run: the single writer. Each outcome goes to the journal as it arrives (a killed
run loses at most the images in flight), then one finalize writes the store from the journal,
the entries still in memory and, for a retry, the store being retried.
"""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from typing import Callable, Iterator

from .. import __version__
from ..core.errors import DataError, StoreError
from ..store.entry import Entry
from ..store.index import StoreFile
from ..store.schema import FORMATS
from ..store.writer import write_store
from .plan import Plan, previous_run_log
from .summary import RunSummary
from .work import Done, Failed, Outcome

KEEP_BYTES = 64 << 20
"""Entries of this run kept in memory (besides the journal) for the final assembly, so it need
not read them all back from disk (about 6 ms an image, a serial step every parallel run waits
for). The cap keeps the parent's memory flat in the split's size: beyond it, entries are read back."""


def now(timespec: str = "seconds") -> str:
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def completed() -> str:
    """A store's completion time, to the microsecond: downstream stores and exports pin the
    store they read by it, so a store rewritten within the same second (a quick retry) must
    still read as a different one."""
    return now("microseconds")


def versions() -> dict[str, str]:
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


class Kept(dict):
    """At most ``budget`` bytes of finished entries; the rest are read back from the journal."""

    def __init__(self, budget: int = KEEP_BYTES):
        super().__init__()
        self.room = budget

    def add(self, image_id: str, entry: Entry) -> None:
        size = entry.nbytes()
        if size <= self.room:
            self[image_id] = entry
            self.room -= size


class Commit:
    """Journal, session record and final store of one run of ``plan``; fills ``summary``."""

    def __init__(self, plan: Plan, summary: RunSummary, *, on_error: str, output: str,
                 log: Callable[[str], None] = lambda s: None):
        self.plan, self.summary, self.on_error, self.output, self.log = plan, summary, on_error, output, log
        self.journal = plan.journal
        self.kept = Kept()
        self.session = None

    def start(self, jobs: int, backend: str, device: str | None = None) -> None:
        """The journal's manifest (a new run) and this session's record in the run log (with the
        device of a stage that runs a network)."""
        plan = self.plan
        record = {**versions(), "start": now(), "host": socket.gethostname(), "pid": os.getpid(), "jobs": jobs,
                  "backend": backend, "resumed": plan.resumed}
        if device is not None:
            record["device"] = device
        if plan.previous is not None:
            record["retry_failed"] = plan.retried
        try:
            if not self.journal.exists():
                plan.target.store.parent.mkdir(parents=True, exist_ok=True)
                created = plan.previous.meta["created"] if plan.previous is not None else now()
                self.journal.start({**plan.want, "ids": plan.ids, "created": created,
                                    "package_version": __version__, "host": socket.gethostname()})
            self.session = self.journal.start_session(record)
        except OSError as exc:
            raise self._cannot_write(exc) from None

    def record_bad(self) -> None:
        """Annotation problems, known before any work: stop at once, or record them as failed."""
        bad = self.plan.bad
        if bad and self.on_error == "fail":
            more = (f" (and {len(bad) - 1} more bad annotation(s); --on-error skip records them as failed)"
                    if len(bad) > 1 else "")
            raise DataError(bad[0].path, bad[0].problem + more, bad[0].image_id)
        for r in bad:
            self._failure(r.image_id, r.reason)
        self.summary.processed += len(bad)

    def _cannot_write(self, exc: OSError) -> StoreError:
        kept = len(self.journal.finished())
        return StoreError(f"{self.journal.dir}: cannot write the run's journal ({exc.strerror or exc}); the {kept} "
                          f"image(s) finished are kept: free some space (or fix the folder) and rerun the same "
                          f"command to resume")

    def add(self, outcome: Outcome) -> None:
        if isinstance(outcome, Failed):
            if self.on_error == "fail":
                raise DataError(outcome.path, outcome.problem, outcome.image_id)
            self._failure(outcome.image_id, outcome.reason)
        elif isinstance(outcome, Done):
            try:
                self.journal.put(outcome.image_id, outcome.entry)
            except OSError as exc:
                raise self._cannot_write(exc) from None
            self.kept.add(outcome.image_id, outcome.entry)
            self.summary.objects += outcome.entry.num_objects
            tag = outcome.entry.attrs.get("exif_orientation", 1)
            if tag != 1:
                applied = outcome.entry.attrs.get("orientation", 1) == tag
                self.summary.oriented[outcome.image_id] = f"{'applied' if applied else 'ignored'} {tag}"
            for key, value in outcome.counts.items():
                self.summary.counts[key] = self.summary.counts.get(key, 0) + int(value)
        else:  # pragma: no cover - a worker returning anything else is a programming error
            raise TypeError(f"a worker returned {type(outcome).__name__}, not an outcome")
        self.summary.processed += 1

    def _failure(self, image_id: str, reason: str) -> None:
        try:
            self.journal.put_failure(image_id, reason)
        except OSError as exc:
            raise self._cannot_write(exc) from None
        self.summary.failures.append((image_id, reason))

    def finish(self, wall_s: float) -> None:
        """End the session, write the store (one finalize) and remove the journal."""
        summary, plan = self.summary, self.plan
        try:
            self.journal.end_session(self.session, {"end": now(), "processed": summary.processed,
                                                    "objects": summary.objects, "failed": len(summary.failures),
                                                    "wall_s": round(wall_s, 3)})
        except OSError as exc:
            raise self._cannot_write(exc) from None
        before = previous_run_log(plan)
        sessions = before + [s for s in self.journal.sessions() if s not in before]
        meta = {**plan.want, "package_version": __version__, "created": self.journal.manifest()["created"],
                "completed": completed(), "run_log": json.dumps(sessions)}
        counted = {"done": 0, "failed": 0}
        old = StoreFile(plan.target.store) if plan.previous is not None else None
        try:
            write_store(plan.target.store, meta, plan.ids, self._entries(old, counted), FORMATS[self.output])
        except OSError as exc:
            raise StoreError(f"{plan.target.store}: cannot write the store ({exc.strerror or exc}); every image is "
                             f"in the journal: free some space and rerun the same command to write it") from None
        finally:
            if old is not None:
                old.close()
        self.journal.remove()
        summary.done, summary.failed = counted["done"], counted["failed"]

    def _entries(self, old: StoreFile | None, counted: dict[str, int]) -> Iterator[tuple[str, Entry | None, str]]:
        in_journal = self.journal.finished()
        for image_id in self.plan.ids:
            if image_id in self.kept:
                item = (image_id, self.kept.pop(image_id), "")
            elif image_id in in_journal:
                item = (image_id, *self.journal.get(image_id))
            else:                                        # kept from the store being retried
                item = (image_id, old.entry(image_id), "")
            counted["done" if item[1] is not None else "failed"] += 1
            yield item
