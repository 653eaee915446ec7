"""The runner: the only code that joins a stage, an executor and a store.

    records (catalog) -> plan -> map (executor: worker loads the image, stage.process_image -> entry)
                      -> commit (parent: journal, crash-safe) -> one finalize (store, renamed into place)

``run.py`` reads top-down as those three steps; ``docs/ARCHITECTURE.md`` draws the layers.
Workers return typed outcomes; only the run's own process writes.
"""
from .devices import check_devices, run_on_devices
from .executors import BACKENDS, backend_context, dask_client, resolve_jobs
from .identity import Identity, Target, cache_key, resolve_target
from .merge import merge_shards
from .plan import image_groups
from .run import ON_ERROR, run_stage
from .summary import RunSummary

__all__ = ["BACKENDS", "ON_ERROR", "Identity", "RunSummary", "Target", "backend_context", "cache_key",
           "check_devices", "dask_client", "image_groups", "merge_shards", "resolve_jobs", "resolve_target",
           "run_on_devices", "run_stage"]
