"""Errors a user can act on. Each names the file (or store) and the problem; the CLI prints
them without a traceback."""
from __future__ import annotations


class PseudolabelError(Exception):
    """Base class of every error the CLI reports as a one-line message."""


class DataError(PseudolabelError):
    """Bad input data: names the offending file and what is wrong with it."""

    def __init__(self, path: str, problem: str, image_id: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.image_id = image_id
        super().__init__(f"{self.path}: {problem}")


class LayoutError(PseudolabelError):
    """The data root does not look like any dataset layout we know."""


class StoreError(PseudolabelError):
    """A label store that cannot be used as asked (incomplete, wrong version, mismatch)."""


class ConfigError(PseudolabelError):
    """A stage configuration value that is out of range or inconsistent."""


class Notice(str):
    """A message that ``-q`` does not hide (e.g. how many images failed): still a plain string for
    any ``log`` callable."""
