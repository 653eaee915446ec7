"""What a run did, for the command's last lines, recipes and tests."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import Notice
from ..core.progress import format_seconds


@dataclass
class RunSummary:
    stage: str
    split: str
    store: Path
    images: int = 0            # images in the split (or the shard)
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
    oriented: dict[str, str] = field(default_factory=dict)  # id -> "applied 6" / "ignored 6": EXIF orientation
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
        what = {"labels": "objects", "proposals": "proposals"}.get(self.output)
        out = [f"{self.stage} [{self.split}]: {self.processed} images"
               + (f", {self.objects} {what}" if what else "") + " in "
               f"{format_seconds(self.wall_s)} ({self.wall_s:.1f} s, {speed})"
               + (f"; {self.resumed} resumed from an interrupted run" if self.resumed else "")
               + (f"; retried {self.retried} image(s) that had failed, the others kept" if self.retried else ""),
               f"store: {self.where()} ({self.done} done, {self.failed} failed of {self.images})"]
        if self.counts:
            out.insert(1, "events: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())))
        if self.failed:
            out.append(Notice(f"{self.failed} image(s) failed and were skipped; reasons are in the store "
                              f"(pseudolabel info {self.store} --failures)"))
        out += self._orientation_lines()
        return out

    def _orientation_lines(self) -> list[str]:
        """The photos with an EXIF orientation tag, by what was done with it: labels follow the tag
        where the annotation's size fits the upright photo, else the stored pixels."""
        out = []
        for verb, meaning in (("applied", "labels in the upright frame EXIF-aware loaders (cv2.imread, "
                                          "detectron2, Ultralytics) see"),
                              ("ignored", "their annotation fits the stored pixels: labels in that frame, which "
                                          "an EXIF-aware loader rotates away")):
            ids = [f"{i} ({v.split()[1]})" for i, v in self.oriented.items() if v.startswith(verb)]
            if ids:
                more = f", ... ({len(ids)} in all)" if len(ids) > 5 else ""
                out.append(Notice(f"EXIF orientation {verb} for {len(ids)} photo(s): {', '.join(ids[:5])}{more}; "
                                  f"{meaning}"))
        return out
