"""Which device a run's network runs on: ``--device auto|cpu|cuda`` (``cuda:N`` too).

``auto`` is CUDA when torch sees a CUDA device (a SLURM job with ``--gres=gpu:1`` sees exactly the
GPU it was given), else the CPU. The runner resolves the choice once, says it and records it in
the store's run log, and hands it to the stage with every image (``stages.StageContext``). A device
is not part of a stage's configuration: the same configuration on a CPU and on a GPU is the same
store.
"""
from __future__ import annotations

from ..core.errors import ConfigError



def resolve(spec: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; ``cuda`` / ``cuda:N`` checked to exist here; ``cpu`` as is.
    ``spec`` is a ``--device`` value as ``RunOptions`` checked it (its spelling is checked there)."""
    if spec == "cpu":
        return "cpu"
    import torch
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {spec}: torch sees no CUDA device here (CUDA_VISIBLE_DEVICES="
                          f"{_visible()}); use --device cpu, or auto")
    index = spec.partition(":")[2]
    if index and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {spec}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return spec


def _visible() -> str:
    import os
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def describe(device: str) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu (16 threads)``, for logs and the run log."""
    import torch
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"
