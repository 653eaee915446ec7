"""Options shared by commands: the stable contract of data root, output root and split."""
from __future__ import annotations

import dataclasses
import json
import typing

import click

from ..catalog import Dataset, open_dataset
from ..core.config import config_from_mapping
from ..core.errors import Notice

_data_root = click.option(
    "--data-root", envvar="PSEUDOLABEL_DATA", type=click.Path(file_okay=False), default=None,
    help="Dataset folder: a VOC2012 folder, an SBD folder, one holding both, a COCO dataset "
         "(annotations/instances_<split>.json) or a YOLO one (data.yaml, images/, labels/). "
         "[env: PSEUDOLABEL_DATA]")


def _remember(ctx: click.Context, param: click.Parameter, value):
    ctx.meta[f"pseudolabel.{param.name}"] = value
    return value


max_objects_option = click.option(
    "--max-objects", type=int, default=None, expose_value=False, callback=_remember,
    metavar="N", help="Images with more objects than this fail (named) instead of taking the machine's memory "
                      "(a mask per object is held). [default: 1000] [env: PSEUDOLABEL_MAX_OBJECTS]",
    envvar="PSEUDOLABEL_MAX_OBJECTS")


annotations_option = click.option(
    "--annotations", type=click.Path(dir_okay=False), default=None, expose_value=False, callback=_remember,
    metavar="FILE", help="A COCO instances JSON whose images are under --data-root; its split is named after the "
                         "file (instances_train2017.json: train2017). [env: PSEUDOLABEL_ANNOTATIONS]",
    envvar="PSEUDOLABEL_ANNOTATIONS")


def data_root_option(func):
    """``--data-root``, ``--annotations`` and ``--max-objects`` (how the dataset is read)."""
    return _data_root(annotations_option(max_objects_option(func)))
cache_option = click.option(
    "--cache", envvar="PSEUDOLABEL_CACHE", type=click.Path(file_okay=False), default="./cache",
    help="Output root; a stage's current store is <cache>/<dataset>/<split>/<stage>.h5, a link "
         "into <stage>/ where stores are kept per configuration (docs/CACHE.md). [env: PSEUDOLABEL_CACHE]")
split_option = click.option(
    "--split", default=None,
    help="Split to use: a VOC ImageSets/Segmentation name (train, val, ...), train_aug, sbd_train, sbd_val "
         "when VOC and SBD share the data root, a COCO file's split (instances_<split>.json) or a YOLO "
         "images/<split> folder. [default: train, or the data's only split]")


def split_of(dataset: Dataset, split: str | None) -> str:
    """``--split``, or the data's default (``train``, else its only split)."""
    return split or dataset.default_split()


def progress_enabled(ctx: click.Context) -> bool:
    return ctx.find_root().obj.get("verbosity", 0) >= 0


def logger(ctx: click.Context, level: int = 0):
    """Messages to stderr at ``level`` (0: unless -q); a :class:`~pseudolabel.core.errors.Notice` even with -q."""
    def log(message: str) -> None:
        if ctx.find_root().obj.get("verbosity", 0) >= level or isinstance(message, Notice):
            click.echo(message, err=True)
    return log


def dataset_from(data_root: str | None) -> Dataset:
    """The dataset at ``data_root``, read with this command's ``--annotations`` and ``--max-objects``."""
    from ..catalog.layouts import MAX_OBJECTS
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    limit = meta.get("pseudolabel.max_objects")
    return open_dataset(data_root, MAX_OBJECTS if limit is None else limit, meta.get("pseudolabel.annotations"))


def store_path(cache: str, dataset: Dataset, split: str, stage: str | None, store: str | None = None):
    """The store a command means: ``store`` (``--store KEY|PATH``: a store file, or a cache key of
    one under the output root, of ``stage`` when given) when given, else the current store of
    ``stage`` (``boxes`` by default), with a hint when there is none yet."""
    from ..core.errors import StoreError
    from ..core.output_root import OutputRoot, journal_dir

    root = OutputRoot(cache)
    dataset.check_split(split)
    if store:
        return root.find_store(dataset.name, split, store, stage)
    stage = stage or "boxes"
    path = root.current(dataset.name, split, stage)
    if not path.exists() and not journal_dir(path).exists():
        raise StoreError(f"{path}: no such store; run `pseudolabel {stage} --split {split}` with the same "
                         f"--data-root and --cache first (there is no {stage} store yet)")
    return path


def label_stages() -> list[str]:
    """The stages that make label stores: the ``--stage`` choices of commands that read labels."""
    from ..stages import STAGES
    return [name for name in STAGES if STAGES.output(name) == "labels"]


def store_option(what: str):
    return click.option("--store", default=None, metavar="KEY|PATH",
                        help=f"{what} this store instead of --stage's current one: a store file, or the cache key "
                             f"of one under --cache (`pseudolabel cache list` shows them; 4+ digits will do).")


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


def run_options(scope: str, *, network: bool = True, given_only: bool = False):
    """Click options for the run options of ``scope`` (``stage`` or ``run``), generated from
    :class:`~pseudolabel.runner.options.RunOptions`' fields (their help, choices and metavars);
    ``network``: include ``--device`` and ``--gpus`` (commands of stages that run a network, and
    ``run``). ``given_only``: an option left out is ``None`` (``pseudolabel run``, whose recipe
    supplies the value), not the field's default. Values are checked by ``RunOptions`` itself."""
    from ..runner.options import flag, fields_for

    def decorate(func):
        for f in reversed(fields_for(scope)):
            meta = f.metadata
            if meta["network"] and not network:
                continue
            names = [flag(f.name)] + ([meta["short"]] if meta["short"] else [])
            help_text = meta["help"] + (" [default: the recipe's, else "
                                         f"{_shown(f.default)}]" if given_only and f.type != "bool" else "")
            if f.type == "bool":
                opt = click.option(*names, f.name, is_flag=True, help=meta["help"])
            else:                                  # parsed here, checked by RunOptions (one place)
                metavar = meta["metavar"] or ("[" + "|".join(meta["choices"]) + "]" if meta["choices"] else None)
                default = None if given_only else _shown(f.default)
                opt = click.option(*names, f.name, type=int if f.type == "int" else str, default=default,
                                   metavar=metavar, show_default=not given_only and default is not None,
                                   help=help_text)
            func = opt(func)
        return func
    return decorate


def parse_run_options(values: dict):
    """:class:`RunOptions` from this command's run option values; a bad value or combination is a
    usage error (exit status 2) naming the options."""
    from ..core.errors import ConfigError
    from ..runner import RunOptions
    try:
        return RunOptions.from_layers(values)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _shown(value):
    """A run option's default as the command line writes it."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or None
    return value


def build_config(config_class: type, values: dict):
    """The configuration from this command's option values (``config.config_from_mapping``);
    a bad value is a ConfigError naming the option as typed (``--work-side``)."""
    return config_from_mapping(config_class, values, style="cli")
