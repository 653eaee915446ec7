"""Stage configurations: frozen dataclasses, checked in one place and built from a mapping one way.

Every stage's configuration is a frozen dataclass whose fields are its parameters, each with its
default and a docstring right after it (the command-line help). Fields may declare bounds with
:func:`option`; classes derive from :class:`Checked`, so every construction path (a command-line
option, a recipe table, a device worker, a Python caller) goes through the same three steps:

1. **coerce** by type hint: lists become the tuples a frozen config holds, whole numbers in
   ``float`` fields become floats (``[0, 1, 1]`` and ``(0.0, 1.0, 1.0)`` are one configuration,
   one cache key), wrong types are refused;
2. **bounds** declared on the fields (``option(300, ge=0)``), per element for tuple fields;
3. **rules** across fields in the class's ``validate`` (``collapse_frac < explode_frac``).

A violation raises :class:`OptionError`, naming the field. :func:`config_from_mapping` is the
one way from a mapping of option values (command line, recipe table, device worker) to a
configuration; it names unknown keys and renders the field the way its source spells it
(``--work-side`` on the command line, ``work_side`` in a recipe).
:func:`config_json` is the canonical JSON that a store saves and its cache key hashes.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any

from .errors import ConfigError


class OptionError(ConfigError, ValueError):
    """A configuration value that is out of range, of the wrong type or inconsistent with another:
    ``name`` is the field, ``problem`` what is wrong with it."""

    def __init__(self, name: str, problem: str):
        self.name, self.problem = name, problem
        super().__init__(f"{name}: {problem}")


def option(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, odd: bool = False, nonempty: bool = False, length: int | None = None,
           choices: tuple[str, ...] | None = None, since: str | None = None) -> Any:
    """A field with bounds, checked whenever the configuration is made. For tuple fields the bounds
    apply to every element (``nonempty``, ``length``: of the tuple itself). The command line shows
    the bounds in ``--help`` and refuses values outside them with the option's name. ``since``: the
    field was added after stores of its stage existed; while it holds its default it is left out
    of the canonical JSON (:func:`config_json`), so those stores keep their cache keys; its
    default must therefore never change (``tests/test_compat.py`` pins them): a store keyed without
    the field would read as made with the new default."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, odd=odd, nonempty=nonempty, length=length,
                                  choices=choices, since=since).items() if v is not None and v is not False}
    return dataclasses.field(default=default, metadata=meta)


def bounds_text(meta: dict[str, Any]) -> str:
    """``ge=0, lt=1`` -> ``'>= 0, < 1'``, for help texts and messages."""
    signs = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = [f"{signs[k]} {meta[k]:g}" for k in ("ge", "gt", "le", "lt") if k in meta]
    if meta.get("odd"):
        parts.append("odd")
    return ", ".join(parts)


def _element_problem(value: Any, meta: dict[str, Any]) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, ok in (("ge", value >= meta.get("ge", -math.inf)), ("gt", value > meta.get("gt", -math.inf)),
                        ("le", value <= meta.get("le", math.inf)), ("lt", value < meta.get("lt", math.inf))):
            if key in meta and not ok:
                return f"must be {bounds_text(meta)}, got {value!r}"
        if meta.get("odd") and int(value) % 2 == 0:
            return f"must be an odd number, got {value!r}"
    if "choices" in meta and value not in meta["choices"]:
        return f"must be one of {', '.join(meta['choices'])}, got {value!r}"
    return None


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """``value`` as the type ``kind`` of field ``name`` (see the module docstring), or OptionError."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise OptionError(name, f"must be a list, got {value!r}")
        args = typing.get_args(kind)
        inner = args[0] if args else Any
        if typing.get_origin(inner) is tuple and not all(isinstance(v, (list, tuple)) for v in value):
            raise OptionError(name, f"must be a list of lists, got {list(value)!r}")
        return tuple(_coerce(name, v, inner) for v in value)
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionError(name, f"must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(name, f"must be a whole number, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(name, f"must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise OptionError(name, f"must be a string, got {value!r}")
        return value
    return value


class Checked:
    """Base of configuration dataclasses: coerce, check bounds, then ``validate`` (see the module
    docstring). Subclasses that add rules override ``validate`` and call ``super().validate()``."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            object.__setattr__(self, f.name, value)
            meta = f.metadata
            if isinstance(value, tuple):
                if meta.get("nonempty") and not value:
                    raise OptionError(f.name, "must not be empty")
                if "length" in meta and len(value) != meta["length"]:
                    raise OptionError(f.name, f"must hold {meta['length']} values, got {list(value)}")
                elements = [v for v in value if not isinstance(v, tuple)]
            else:
                elements = [value]
            for v in elements:
                problem = _element_problem(v, meta)
                if problem:
                    raise OptionError(f.name, problem)
        self.validate()

    def validate(self) -> None:
        """Rules across fields; raise :class:`OptionError` naming the first field involved."""


def field_types(config_class: type) -> dict[str, Any]:
    return typing.get_type_hints(config_class)


def config_from_mapping(config_class: type, values: dict[str, Any], *, where: str = "",
                        style: str = "python", what: str | None = None) -> Any:
    """The configuration from option values: keys with ``-`` or ``_``; a tuple field may be a
    JSON string (as the command line gives it). Unknown keys and bad values are a ConfigError that
    starts with ``where`` and names the option as ``style`` spells it (``cli``: ``--work-side``,
    ``python``: ``work_side``); ``what`` names what is configured in the unknown-key message."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    hints = field_types(config_class)

    def spelled(name: str) -> str:
        return "--" + name.replace("_", "-") if style == "cli" else name

    kwargs = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{where}unknown option {key!r} for {what or config_class.__name__}; "
                              f"known: {', '.join(sorted(fields))}")
        if typing.get_origin(hints[name]) is tuple and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ConfigError(f"{where}{spelled(name)}: not a JSON list ({exc})") from None
        kwargs[name] = value
    try:
        return config_class(**kwargs)
    except OptionError as exc:
        raise ConfigError(f"{where}{spelled(exc.name)}: {exc.problem}") from None
    except (TypeError, ValueError) as exc:       # a rule written without OptionError
        raise ConfigError(f"{where}invalid {config_class.__name__}: {exc}") from None


def config_to_mapping(config: Any) -> dict[str, Any]:
    """JSON-able option values: ``config_from_mapping(type(c), config_to_mapping(c)) == c``."""
    return json.loads(config_json(config))


def config_json(config: Any) -> str:
    """Canonical JSON of a configuration (sorted keys, tuples as lists): what a store saves in its
    ``config`` attribute and what its cache key hashes. Fields added later (``option(since=...)``)
    are left out while they hold their default."""
    data = dataclasses.asdict(config)
    for f in dataclasses.fields(config):
        if f.metadata.get("since") and data[f.name] == f.default:
            del data[f.name]
    return json.dumps(data, sort_keys=True)
