"""Helpers shared by tests."""
from __future__ import annotations

import dataclasses
import json
from typing import Any


def config_args(config: Any) -> list[str]:
    """Command-line options that rebuild ``config`` (as the stage commands read them)."""
    args = []
    for f in dataclasses.fields(config):
        value, name = getattr(config, f.name), f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, tuple):
            args += [f"--{name}", json.dumps(value)]
        else:
            args += [f"--{name}", str(value)]
    return args
