"""How every benchmark hands out its figures: indented JSON on standard output and, with
``--out FILE``, the same text in that file (its folder made), for ``bench/results/``."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, out: str | None) -> None:
    text = json.dumps(result, indent=2)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    print(text)
