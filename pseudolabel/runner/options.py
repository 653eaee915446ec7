"""How a run runs: one frozen, validated value (:class:`RunOptions`), made one way from a command
line, a recipe and its steps, and handed to :func:`pseudolabel.runner.run`.

A stage's *configuration* says what a store holds (it is in the cache key); its *run options* say how
the store is made: how many workers, on which device, from scratch or resumed, what to do with bad
input. Each option is one field below, its default, the words of its ``--help`` and where it may be
given (``scopes``): on a stage's command (``stage``), on ``pseudolabel run`` (``run``), at the top of
a recipe (``recipe``) or in one of its steps (``step``). The command line's options, the recipe keys
it accepts and the checks all come from these fields, so a new run option is one field here (and a
rule in :meth:`RunOptions.validate` if it has one).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError

ON_ERROR = ("fail", "skip")
BACKENDS = ("loky", "dask")
DEVICES = ("auto", "cpu", "cuda")
ALL = ("stage", "run", "recipe", "step")


def _field(default: Any, help: str, scopes: tuple[str, ...], *, flag: str | None = None, short: str | None = None,
           metavar: str | None = None, choices: tuple[str, ...] | None = None, network: bool = False) -> Any:
    """A run option: ``scopes`` where it may be given, ``network``: only for stages that run a
    network (``--device``, ``--gpus``)."""
    meta = {"help": help, "scopes": scopes, "flag": flag, "short": short, "metavar": metavar, "choices": choices,
            "network": network}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunOptions:
    """Everything about how one stage's run runs (see the module docstring). Checked when made:
    a bad value or a bad combination is a :class:`ConfigError` naming the options as the command
    line spells them."""

    jobs: int = _field(1, "Worker processes (images in parallel, one core each); 0 = all cores. Stages that "
                          "run a network use one worker per device.", ALL, short="-j")
    force: bool = _field(False, "Discard this configuration's store or interrupted run and start over.",
                         ("stage", "run"))
    retry_failed: bool = _field(False, "Redo only the images recorded as failed in this configuration's finished "
                                       "store (e.g. after fixing their files); every other image is kept as it is.",
                                ("stage", "run"))
    on_error: str = _field("fail", "On bad input: stop with a message naming the file, or skip the image and "
                                   "record it in the store as failed.", ALL, choices=ON_ERROR)
    shard: tuple[int, int] | None = _field(None, "Only images I, I+N, I+2N, ... of the split, into "
                                                 "<stage>/<key>.shard-I-of-N.h5 (one machine per shard); "
                                                 "`pseudolabel merge` joins them.", ("stage",), metavar="I/N")
    backend: str = _field("loky", "Where images are processed: loky = --jobs local processes; dask = every "
                                  "worker of the dask.distributed cluster at --scheduler (this process still "
                                  "writes the store).", ("stage", "run"), choices=BACKENDS)
    scheduler: str | None = _field(None, "Address of the dask scheduler for --backend dask, e.g. "
                                         "tcp://10.0.0.5:8786.", ("stage", "run"), metavar="ADDRESS")
    device: str = _field("auto", "Where the network runs: auto = CUDA when torch sees a GPU (a SLURM job's "
                                 "--gres GPU included), else the CPU; said at the start and kept in the store's "
                                 "run log.", ALL, metavar="auto|cpu|cuda|cuda:N", network=True)
    gpus: tuple[str, ...] = _field((), "GPU ids, e.g. 0,1: one process per GPU over deterministic shards, merged "
                                       "at the end; rerunning resumes ('cpu' entries run a shard on the CPU).",
                                   ("stage", "step"), metavar="IDS", network=True)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name)))
        self.validate()

    def validate(self) -> None:
        """The rules across options; every one is checked here and nowhere else."""
        if self.force and self.retry_failed:
            raise ConfigError("--force recomputes every image and --retry-failed only the failed ones: pass one of them")
        if self.backend == "dask" and not self.scheduler:
            raise ConfigError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
        if self.scheduler and self.backend != "dask":
            raise ConfigError("--scheduler is only used with --backend dask")
        if self.gpus and self.shard is not None:
            raise ConfigError("--gpus makes its own shards; drop --shard")
        if self.gpus and self.device != "auto":
            raise ConfigError("--gpus chooses the device of each process; drop --device")
        if self.gpus and self.backend != "loky":
            raise ConfigError("--gpus runs one local process per GPU; drop --backend dask")

    # -- made from mappings --------------------------------------------------------------
    @classmethod
    def from_layers(cls, *layers: dict[str, Any], where: str = "", style: str = "cli") -> "RunOptions":
        """The options of a run from mappings of option values, later ones winning (defaults, a
        recipe, its step, the command line); ``None`` means "not given here". Keys with ``-`` or
        ``_``; unknown keys and bad values are a ConfigError starting with ``where`` that names the
        options as ``style`` spells them (``cli``: ``--on-error``; ``recipe``: ``on_error``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        merged: dict[str, Any] = {}
        for layer in layers:
            for key, value in layer.items():
                name = key.replace("-", "_")
                if name not in names:
                    raise ConfigError(f"{where}unknown run option {key!r}; known: {', '.join(sorted(names))}")
                if value is not None:
                    merged[name] = value
        try:
            return cls(**merged)
        except ConfigError as exc:
            raise ConfigError(f"{where}{spelled(str(exc), style)}") from None

    def replace(self, **changes: Any) -> "RunOptions":
        return dataclasses.replace(self, **changes)

    def for_stage(self, stage) -> "RunOptions":
        """These options for ``stage``: ``--gpus`` and a chosen ``--device`` only where a network
        runs (a ConfigError otherwise)."""
        if not stage.uses_device and (self.gpus or self.device != "auto"):
            which = "--gpus" if self.gpus else "--device"
            raise ConfigError(f"{which} is for stages that run a network; {stage.name!r} runs on --jobs CPU workers")
        return self

    def resolve_jobs(self, log=lambda s: None) -> int:
        """Worker processes for ``jobs``: ``0`` means every core this process may use, and more
        workers than cores are never started (they would only compete for them: a thousand once
        left leaked semaphores behind)."""
        cores = cpu_count()
        if self.jobs > cores:
            log(f"--jobs {self.jobs}: this process may use {cores} core(s); starting {cores} worker process(es)")
            return cores
        return cores if self.jobs == 0 else self.jobs


def cpu_count() -> int:
    """Cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fields_for(scope: str) -> list[dataclasses.Field]:
    """The run options that may be given in ``scope`` (``stage``, ``run``, ``recipe``, ``step``)."""
    return [f for f in dataclasses.fields(RunOptions) if scope in f.metadata["scopes"]]


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def spelled(message: str, style: str) -> str:
    """A message about run options with the options named as ``style`` spells them: ``cli``
    (``--on-error``, as messages are written) or ``recipe`` (``on_error``)."""
    if style == "recipe":
        for f in dataclasses.fields(RunOptions):
            message = message.replace(flag(f.name), f.name)
    return message


def _coerce(name: str, value: Any) -> Any:
    """A value as the field ``name`` holds it: ``shard`` from ``"I/N"``, ``gpus`` from ``"0,1"``,
    or a ConfigError naming the option."""
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{flag(name)}: {problem}, got {value!r}")

    if name == "jobs":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("expected 0 (all cores) or a positive whole number")
    elif name in ("force", "retry_failed"):
        if not isinstance(value, bool):
            raise bad("expected true or false")
    elif name in ("on_error", "backend"):
        choices = ON_ERROR if name == "on_error" else BACKENDS
        if value not in choices:
            raise bad(f"expected one of {', '.join(choices)}")
    elif name == "scheduler":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad("expected an address such as tcp://10.0.0.5:8786")
    elif name == "shard":
        return _shard(value, bad)
    elif name == "device":
        return _device(value, bad)
    elif name == "gpus":
        return _gpus(value, bad)
    return value


def _shard(value: Any, bad) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = tuple(int(v) for v in value.split("/"))
        except ValueError:
            raise bad("expected I/N such as 0/4") from None
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise bad("expected I/N such as 0/4")
    i, n = value
    if not (n >= 1 and 0 <= i < n):
        raise bad("need 0 <= I < N")
    return int(i), int(n)


def _device(value: Any, bad) -> str:
    if not isinstance(value, str):
        raise bad("expected auto, cpu, cuda or cuda:N")
    spec = value.strip().lower() or "auto"
    index = spec.partition(":")[2]
    if spec in DEVICES or (spec.startswith("cuda:") and index.isdigit()):
        return spec
    raise bad("expected auto, cpu, cuda or cuda:N")


def _gpus(value: Any, bad) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise bad("expected GPU ids such as 0,1")
    if any(not (v.isdigit() or v == "cpu") for v in value):
        raise bad("expected GPU ids such as 0,1 (or 'cpu' entries)")
    return tuple(value)
