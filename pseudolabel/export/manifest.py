"""An export writes only its own files: every file it writes is listed in a manifest beside them,
``<out>/pseudolabel_export_<format>_<split>.json``, and a later export of the same format and
split removes only files its predecessor's manifest lists. A file that is already in the folder
and that no pseudolabel manifest there lists (a user's own labels, photos, a dataset's files) is
never overwritten: the export stops, naming it, before writing anything. An output folder inside
the data root the store was made from is refused (its human masks would be the first casualty).

The manifest also records which store the export came from (store, cache key, completion time,
format, options), so ``pseudolabel run`` knows when an export step is up to date.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..core.errors import ConfigError

PREFIX = "pseudolabel_export_"


def manifest_path(out: Path, fmt: str, split: str) -> Path:
    return out / f"{PREFIX}{fmt}_{split}.json"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A manifest's content, or None when it is missing or not one of ours."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        return None
    return data


def refuse_inside(out: Path, data_root: str | None) -> None:
    """A ConfigError when ``out`` is the data root or a folder inside it."""
    if not data_root:
        return
    root, target = Path(data_root).resolve(), Path(out).resolve()
    if target == root or root in target.parents:
        raise ConfigError(f"{out}: inside the data root {root}; an export never writes among the dataset's own "
                          f"files (its human masks would be replaced): choose an --out outside it")


class Written:
    """The files of one export (``fmt`` of ``split``) under ``out``: :meth:`claim` them all before
    writing any, then :meth:`begin`, write, :meth:`finish`."""

    def __init__(self, out: str | os.PathLike, fmt: str, split: str, identity: dict[str, Any]):
        self.out, self.fmt, self.split = Path(out), fmt, split
        self.identity = identity
        self.path = manifest_path(self.out, fmt, split)
        previous = read_manifest(self.path)
        self.previous: list[str] = [f for f in (previous or {}).get("files", []) if isinstance(f, str)]
        self.files: list[str] = []

    def others(self) -> set[str]:
        """The files other pseudolabel manifests in this folder list (other formats or splits)."""
        found: set[str] = set()
        for path in self.out.glob(f"{PREFIX}*.json"):
            data = read_manifest(path) if path != self.path else None
            if data is not None:
                found |= {f for f in data["files"] if isinstance(f, str)}
        return found

    def claim(self, names: Iterable[str]) -> None:
        """The files (relative to ``out``) this export will write; a ConfigError naming the first
        one that is already there and not ours."""
        names = list(names)
        ours = set(self.previous) | self.others()
        for name in names:
            target = self.out / name
            if name not in ours and (target.exists() or target.is_symlink()):
                raise ConfigError(f"{target}: already there and not written by a pseudolabel export; an export "
                                  f"writes only its own files: choose another --out (nothing was written)")
        self.files = names

    def begin(self) -> None:
        """The manifest before any file is written: the files about to be written and those of the
        previous export, so that an export cut short leaves nothing it does not own."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._save(sorted(set(self.files) | set(self.previous)))

    def finish(self) -> None:
        """Remove the previous export's files this one did not write again, then the manifest of
        what this one wrote."""
        keep = set(self.files) | self.others()
        for name in self.previous:
            if name not in keep:
                (self.out / name).unlink(missing_ok=True)
        self._save(sorted(self.files))

    def _save(self, files: list[str]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({**self.identity, "format": self.fmt, "split": self.split, "files": files},
                                  indent=1) + "\n")
        os.replace(tmp, self.path)


def write_text(path: Path, text: str) -> None:
    """``path`` written whole (a temporary name, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_png(pixels, path: Path) -> None:
    """(H, W, 3) uint8 pixels as a PNG (no EXIF), written whole."""
    from PIL import Image
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(pixels).save(tmp, format="PNG")
    os.replace(tmp, path)


def tag_ignored(store) -> list[str]:
    """The images of ``store`` whose photo carries an EXIF orientation its labels do not follow
    (their annotation fitted the stored pixels): an EXIF-aware loader turns those photos away from
    their labels."""
    return [i for i in store.ids if store.image_attr(i, "exif_orientation", 1) != 1
            and store.image_attr(i, "orientation", 1) == 1]
