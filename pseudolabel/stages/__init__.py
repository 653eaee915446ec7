"""Registry of stages. Adding a stage: one module with a frozen config dataclass (deriving from
``config.Checked``), a pure ``process_image(record, image, config, inputs, context) -> StageResult`` and a
module-level ``STAGE``, listed in ``_MODULES`` below (order = registration order: a stage after
the stages it reads). ``docs/ARCHITECTURE.md`` walks through it.

A stage's module is imported only when that stage is asked for, so a worker process running
``grabcut`` does not pay for importing what ``proposals`` needs (scipy, scikit-image): worker
start-up is part of every parallel run's wall time.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from ..core.results import ProposalResult, StageResult
from .base import CPU, Stage, StageContext

_MODULES = ("boxes", "edges", "prompt", "grabcut", "bbam", "proposals", "refine", "fuse")


class _Registry(Mapping):
    """Read-only name -> :class:`Stage` mapping; names are known without importing anything."""

    def __init__(self, modules: tuple[str, ...]):
        self._modules = modules
        self._loaded: dict[str, Stage] = {}

    def __getitem__(self, name: str) -> Stage:
        if name not in self._loaded:
            if name not in self._modules:
                raise KeyError(name)
            self._loaded[name] = importlib.import_module(f"{__name__}.{name}").STAGE
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, name: object) -> bool:      # Mapping's would import the stage
        return name in self._modules

    def _source(self, name: str):
        """The parsed source of a stage's module, read without importing it (``pseudolabel --help``
        and option choices must not import torch)."""
        import ast
        from importlib.util import find_spec
        from pathlib import Path
        if name not in self._modules:
            raise KeyError(name)
        return ast.parse(Path(find_spec(f"{__name__}.{name}").origin).read_text(encoding="utf-8"))

    def output(self, name: str) -> str:
        """What a stage's store holds (``Stage.output``: ``labels``, ``proposals``, ``edges``),
        without importing its module: the ``output=`` of its ``STAGE = Stage(...)``."""
        import ast
        if name in self._loaded:
            return self._loaded[name].output
        for node in ast.walk(self._source(name)):
            if isinstance(node, ast.keyword) and node.arg == "output" and isinstance(node.value, ast.Constant):
                return node.value.value
        return "labels"

    def summary(self, name: str) -> str:
        """A stage's one-line description without importing its module: the first sentence of
        the module docstring, after "The ``x`` stage:"."""
        import ast
        doc = ast.get_docstring(self._source(name)) or ""
        text = " ".join(doc.split())
        text = text.split(": ", 1)[1] if text.startswith("The ``") and ": " in text else text
        first = text.split(". ")[0].rstrip(".")
        return first[:1].upper() + first[1:] + "."

    def __len__(self) -> int:
        return len(self._modules)


STAGES: Mapping[str, Stage] = _Registry(_MODULES)


def get_stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage '{name}'; known: {', '.join(STAGES)}") from None


__all__ = ["CPU", "STAGES", "ProposalResult", "Stage", "StageContext", "StageResult", "get_stage"]
