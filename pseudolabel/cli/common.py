"""Options shared by commands: the stable contract of data root, output root and split."""
from __future__ import annotations

import dataclasses
import json
import typing

import click

from ..catalog import Dataset, open_dataset
from ..config import config_from_mapping
from ..errors import Notice

data_root_option = click.option(
    "--data-root", envvar="PSEUDOLABEL_DATA", type=click.Path(file_okay=False), default=None,
    help="Dataset folder: a VOC2012 folder, an SBD folder, or one holding both. "
         "[env: PSEUDOLABEL_DATA]")
cache_option = click.option(
    "--cache", envvar="PSEUDOLABEL_CACHE", type=click.Path(file_okay=False), default="./cache",
    help="Output root; a stage's current store is <cache>/<dataset>/<split>/<stage>.h5, a link "
         "into <stage>/ where stores are kept per configuration (docs/CACHE.md). [env: PSEUDOLABEL_CACHE]")
split_option = click.option(
    "--split", default="train",
    help="Split to use: a VOC ImageSets/Segmentation name (train, val, ...), or train_aug, "
         "sbd_train, sbd_val when VOC and SBD share the data root.")


def progress_enabled(ctx: click.Context) -> bool:
    return ctx.find_root().obj.get("verbosity", 0) >= 0


def logger(ctx: click.Context, level: int = 0):
    """Messages to stderr at ``level`` (0: unless -q); a :class:`~pseudolabel.errors.Notice` even with -q."""
    def log(message: str) -> None:
        if ctx.find_root().obj.get("verbosity", 0) >= level or isinstance(message, Notice):
            click.echo(message, err=True)
    return log


def dataset_from(data_root: str | None) -> Dataset:
    return open_dataset(data_root)


def store_file_path(cache: str, dataset: Dataset, split: str, stage: str):
    """The path of the store a stage wrote under the output root, with a hint when there is
    none yet."""
    from ..errors import StoreError
    from ..layout import OutputRoot, journal_dir

    path = OutputRoot(cache).current(dataset.name, split, stage)
    if not path.exists() and not journal_dir(path).exists():
        raise StoreError(f"{path}: no such store; run `pseudolabel {stage} --split {split}` "
                         f"with the same --data-root and --cache first")
    return path


def open_store(cache: str, dataset: Dataset, split: str, stage: str):
    """The label store a stage wrote under the output root."""
    from ..store import LabelStore

    return LabelStore(store_file_path(cache, dataset, split, stage))


def field_docs(config_class: type) -> dict[str, str]:
    """Attribute docstrings (a string literal right after a field, the Sphinx convention) of a
    dataclass and its bases: each parameter is documented once, next to its default."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(config_class.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _click_type(kind, meta: dict):
    """The click type of a scalar field: a range type when the field declares bounds."""
    lo = meta.get("ge", meta.get("gt"))
    hi = meta.get("le", meta.get("lt"))
    if kind in (int, float) and (lo is not None or hi is not None):
        rng = click.IntRange if kind is int else click.FloatRange
        return rng(min=lo, max=hi, min_open="gt" in meta, max_open="lt" in meta)
    return kind


def config_options(config_class: type):
    """Click options generated from a frozen config dataclass: one ``--field-name`` per field,
    its default and bounds shown and its help from the field's docstring."""
    hints = typing.get_type_hints(config_class)
    docs = field_docs(config_class)

    def decorate(func):
        for f in reversed(dataclasses.fields(config_class)):
            kind = hints[f.name]
            name = f.name.replace("_", "-")
            help_text = f.metadata.get("help", docs.get(f.name, ""))
            if typing.get_origin(kind) is tuple:      # sequences: given as JSON on the command line
                opt = click.option(f"--{name}", f.name, type=str, default=json.dumps(f.default),
                                   help=f"{help_text} (JSON list)")
            elif kind is bool:
                opt = click.option(f"--{name}/--no-{name}", f.name, default=f.default, help=help_text)
            elif "choices" in f.metadata:
                opt = click.option(f"--{name}", f.name, type=click.Choice(f.metadata["choices"]),
                                   default=f.default, help=help_text)
            else:
                opt = click.option(f"--{name}", f.name, type=_click_type(kind, f.metadata), default=f.default,
                                   help=help_text)
            func = opt(func)
        return func
    return decorate


def build_config(config_class: type, values: dict):
    """The configuration from this command's option values (``config.config_from_mapping``);
    a bad value is a ConfigError naming the option as typed (``--work-side``)."""
    return config_from_mapping(config_class, values, style="cli")
