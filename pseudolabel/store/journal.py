"""The journal of a run in progress: one small file per finished (or failed) image in
``<store>.partial/``, each written to a temporary name and renamed, so a run killed at any
moment (SIGKILL included) loses at most the image it was working on. The manifest pins what
the run is (stage, configuration, dataset, split, ids) so a resume never mixes two runs.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import StoreError
from ..core.output_root import lock_path
from .entry import Entry

MANIFEST = "manifest.json"


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` whole or not at all, and on disk before it counts: to a temporary name,
    flushed and synced, renamed into place, then the folder entry synced too (a power cut leaves
    either no entry or a complete one, never the zero-byte file an unsynced rename can leave)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries to disk (a rename is durable only then)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:          # pragma: no cover - some file systems refuse opening folders
        return
    try:
        os.fsync(fd)
    except OSError:          # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextmanager
def run_lock(store: Path):
    """Hold ``<store>.lock`` (an advisory ``flock``) for the duration of a run, so a second run
    on the same store is refused instead of interleaving with the first. The kernel drops the
    lock when its process dies, so a killed run never leaves a stale lock behind."""
    path = lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise StoreError(f"{store}: another run is writing this store (pid {holder}); "
                             f"wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


class Journal:
    """Entries are ``<id>.npz`` (:meth:`Entry.to_npz`, uncompressed: image-sized arrays arrive as
    already-compressed chunks) or ``<id>.failed.json``."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)

    # -- lifecycle -------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.dir / MANIFEST).exists()

    def manifest(self) -> dict[str, Any]:
        try:
            manifest = json.loads((self.dir / MANIFEST).read_text())
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
            return manifest
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.dir / MANIFEST}: unreadable journal manifest ({exc}); "
                             f"rerun with --force to start over") from None

    def start(self, manifest: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.dir / MANIFEST, lambda fh: fh.write(json.dumps(manifest, indent=1).encode()))

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- run log: one file per session (a start, and a resume after every interruption) ------
    def start_session(self, record: dict[str, Any]) -> Path:
        """Write this session's record (``run-NNN.json``); a killed session keeps it without
        an ``end``, which is how the run log shows interruptions."""
        path = self.dir / f"run-{len(list(self.dir.glob('run-*.json'))):03d}.json"
        _atomic_write(path, lambda fh: fh.write(json.dumps(record).encode()))
        return path

    def end_session(self, path: Path, updates: dict[str, Any]) -> None:
        record = {**json.loads(path.read_text()), **updates}
        _atomic_write(path, lambda fh: fh.write(json.dumps(record).encode()))

    def sessions(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.dir.glob("run-*.json")):
            try:
                out.append({"end": None, **json.loads(path.read_text())})
            except ValueError:
                out.append({"end": None, "note": f"{path.name} unreadable"})
        return out

    # -- entries ---------------------------------------------------------------------
    def finished(self) -> dict[str, str]:
        """``{image_id: "done" | "failed"}`` for every entry on disk."""
        state = {}
        if not self.dir.is_dir():
            return state
        for name in os.listdir(self.dir):
            if name.endswith(".failed.json"):
                state[name[: -len(".failed.json")]] = "failed"
            elif name.endswith(".npz"):
                state[name[:-4]] = "done"
        return state

    def put(self, image_id: str, entry: Entry) -> None:
        arrays = entry.to_npz()
        _atomic_write(self.dir / f"{image_id}.npz", lambda fh: np.savez(fh, **arrays))
        self._clear(image_id, ".failed.json")

    def put_failure(self, image_id: str, reason: str) -> None:
        _atomic_write(self.dir / f"{image_id}.failed.json",
                      lambda fh: fh.write(json.dumps({"error": reason}).encode()))
        self._clear(image_id, ".npz")

    def _clear(self, image_id: str, suffix: str) -> None:
        try:
            os.remove(self.dir / f"{image_id}{suffix}")
        except FileNotFoundError:
            pass

    def get(self, image_id: str) -> tuple[Entry | None, str]:
        """``(entry, "")`` for a done image, ``(None, reason)`` for a failed one."""
        failed = self.dir / f"{image_id}.failed.json"
        if failed.exists():
            reason = json.loads(failed.read_text())["error"]
            if not isinstance(reason, str):
                raise ValueError("its error is not text")
            return None, reason
        with np.load(self.dir / f"{image_id}.npz", allow_pickle=False) as data:
            entry = Entry.from_npz(data)
        for value in entry.arrays.values():          # every array's bytes read (and the zip's CRCs checked)
            getattr(value, "chunks", None) or np.asarray(value)
        return entry, ""

    def drop_damaged(self) -> dict[str, str]:
        """Read every entry once; remove those that cannot be read whole (a power cut's zero-byte
        file, a flipped byte) so that their images are redone. Returns ``{file name: problem}``."""
        dropped = {}
        for image_id, state in sorted(self.finished().items()):
            name = f"{image_id}{'.npz' if state == 'done' else '.failed.json'}"
            try:
                self.get(image_id)
            except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises (EOFError, BadZipFile, ...)
                dropped[name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                (self.dir / name).unlink(missing_ok=True)
        return dropped


def lock_held(store: Path) -> bool:
    """Whether a live run holds the lock of ``store`` (taken for an instant to find out)."""
    path = lock_path(store)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)          # closing drops the lock we may have taken
    return False
