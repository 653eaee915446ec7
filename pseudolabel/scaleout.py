"""Scale-out: a stage over several devices (one process per device, each on a deterministic
shard ``--shard k/n``, then one merge; ``--gpus`` and recipes with ``gpus``), and CPU stages on
a dask.distributed cluster (``--backend dask --scheduler ADDRESS``)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from .catalog import Dataset
from .errors import ConfigError
from .runner import merge_shards, stage_target
from .store.schema import point_current, store_path


def config_args(config: Any) -> list[str]:
    """Command-line options that rebuild ``config`` (as ``cli.common.config_options`` reads them)."""
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


def check_devices(devices: list[str]) -> list[str]:
    if not devices or any(not (d.isdigit() or d == "cpu") for d in devices):
        raise ConfigError(f"expected GPU ids such as 0,1 (or 'cpu' entries), got {','.join(devices)!r}")
    return devices


def _device_env(device: str) -> dict[str, str]:
    """The environment of a process that may use only ``device`` (a GPU id or ``cpu``)."""
    env = dict(os.environ)
    if device == "cpu":
        env["PSEUDOLABEL_DEVICE"] = "cpu"
    else:
        env["CUDA_VISIBLE_DEVICES"], env["PSEUDOLABEL_DEVICE"] = device, "cuda"
    return env


def _where(device: str) -> str:
    return "the CPU" if device == "cpu" else f"GPU {device}"


def run_on_devices(stage_name: str, config: Any, dataset: Dataset, split: str, cache: str | os.PathLike,
                   devices: list[str], *, jobs: int = 1, force: bool = False, on_error: str = "fail",
                   log: Callable[[str], None] = lambda s: None, retry_failed: bool = False) -> Path:
    """Shard k of n runs in its own process with only device k visible
    (``CUDA_VISIBLE_DEVICES=k``, ``PSEUDOLABEL_DEVICE=cuda``; a ``cpu`` entry runs its shard on
    the CPU); each writes and resumes its own shard store; then the shards are merged into the
    stage's store, which is returned. A rerun after a failure resumes every shard.
    ``retry_failed`` on a finished store redoes its failed images in one process on the first
    device (failures are few; see ``run_stage``)."""
    if force and retry_failed:
        raise ValueError("force recomputes every image and retry_failed only the failed ones: pass one")
    devices = check_devices(list(devices))
    n = len(devices)
    _, key, out = stage_target(stage_name, config, dataset, split, cache)
    base = [sys.executable, "-m", "pseudolabel", stage_name, "--data-root", str(dataset.root),
            "--cache", str(cache), "--split", split, "--jobs", str(jobs), "--on-error", on_error,
            *config_args(config)] + (["--force"] if force else [])
    if out.exists() and retry_failed:
        log(f"{stage_name} [{split}]: failed images of {out} on {_where(devices[0])}")
        if subprocess.run([*base, "--retry-failed"], env=_device_env(devices[0])).returncode:
            raise ConfigError(f"retrying the failed images of {out} failed (messages above)")
        return out
    if out.exists() and not force:
        log(f"{stage_name} [{split}]: nothing to do, {out} is complete")
        point_current(store_path(cache, dataset.name, split, stage_name), out)
        return out
    procs = []
    for k, dev in enumerate(devices):
        log(f"shard {k}/{n} on {_where(dev)}")
        procs.append(subprocess.Popen([*base, "--shard", f"{k}/{n}"], env=_device_env(dev)))
    codes = [p.wait() for p in procs]
    if any(codes):
        bad = [f"{k}/{n}" for k, c in enumerate(codes) if c]
        raise ConfigError(f"shard(s) {', '.join(bad)} of {stage_name} failed (messages above); rerun the "
                          f"same command to resume them")
    return merge_shards(stage_name, dataset, split, cache, n, key=key, force=force, log=log)


@contextmanager
def dask_client(address: str | None, timeout: str = "20s"):
    """A ``distributed.Client`` connected to the scheduler at ``address`` for the duration of a
    run (joblib's dask backend sends work to the current client). Workers must reach the data
    root and the output root at the same paths as this process (a shared file system), and
    should run one thread each: ``dask worker ADDRESS --nthreads 1 --nworkers N``."""
    if not address:
        raise ConfigError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--backend dask needs the 'distributed' package: "
                          "pip install -c constraints.txt 'pseudolabel[dask]'") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the dask scheduler at {address} ({exc})") from None
    try:
        yield client
    finally:
        client.close()


@contextmanager
def backend_context(backend: str, scheduler: str | None):
    """Nothing for ``loky``; a dask client for ``dask``."""
    if backend == "dask":
        with dask_client(scheduler) as client:
            yield client
    else:
        if scheduler:
            raise ConfigError("--scheduler is only used with --backend dask")
        yield None
