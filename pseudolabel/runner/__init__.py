"""The runner: the only code that joins a stage, an executor and a store.

    records (catalog) -> plan -> map (executor: worker loads the image, stage.process_image -> entry)
                      -> commit (parent: journal, crash-safe) -> one finalize (store, renamed into place)

:func:`run` is the one entry point: a stage, its configuration, the data, the split, the output root
and the run's :class:`RunOptions`. ``run.py`` reads top-down as those three steps;
``docs/ARCHITECTURE.md`` draws the layers. Workers return typed outcomes; only the run's own
process writes.
"""
from .executors import backend_context, dask_client
from .identity import Identity, Target, cache_key, resolve_target
from .merge import merge_shards
from .options import BACKENDS, ON_ERROR, RunOptions
from .plan import image_groups
from .entry import run
from .summary import RunSummary

__all__ = ["BACKENDS", "ON_ERROR", "Identity", "RunOptions", "RunSummary", "Target", "backend_context", "cache_key",
           "dask_client", "image_groups", "merge_shards", "resolve_target", "run"]
