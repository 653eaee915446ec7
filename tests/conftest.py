from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from pseudolabel.cli import cli
from hypothesis import settings

# The fuzz tests draw the same examples on every run (a suite that fails at random is one nobody
# trusts); PSEUDOLABEL_FUZZ_RANDOM=1 explores new ones.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("random", derandomize=False)
settings.load_profile("random" if os.environ.get("PSEUDOLABEL_FUZZ_RANDOM") else "fixed")

from .synth import make_sbd_tree, make_voc_tree

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def voc_root(tmp_path) -> Path:
    return make_voc_tree(tmp_path / "VOC2012", n_images=8)


@pytest.fixture
def combined_root(tmp_path) -> Path:
    """VOC (train 2012_000000..05, val 06..07) and SBD sharing one root. SBD holds two of the
    VOC train ids, one VOC val id, and SBD-only ids."""
    root = tmp_path / "data"
    make_voc_tree(root / "VOC2012", n_images=8)
    make_sbd_tree(root / "SBD", ids_train=["2012_000000", "2012_000001", "2008_000001", "2008_000002"],
                  ids_val=["2012_000006", "2008_000003"])
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner, tmp_path):
    """Run the CLI with a cache in tmp_path; returns click's Result."""
    def run(*args, env=None):
        full_env = {"PSEUDOLABEL_CACHE": str(tmp_path / "cache")}
        full_env.update(env or {})
        return runner.invoke(cli, [str(a) for a in args], env=full_env, catch_exceptions=False)
    return run


def shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent (shared development data)")
    return path


TIME_ATTRS = {"created", "completed", "run_log", "seconds", "index_crc32"}   # timing, and the CRC over it


def store_contents(path) -> dict:
    """Every dataset and attribute of an HDF5 file, minus timestamps and the run log: for equality
    checks."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()
                     if k not in TIME_ATTRS}
            out[name + "@attrs"] = attrs
            if isinstance(obj, h5py.Dataset) and name != "index/checksum":   # a CRC over timings too
                value = obj[()]
                if isinstance(value, np.ndarray) and value.dtype != object:
                    value = (value.dtype.str, value.shape, value.tobytes())  # NaN-safe equality
                elif isinstance(value, np.ndarray):
                    value = value.tolist()
                out[name] = value
        visit("", f)
        f.visititems(visit)
    return out


@pytest.fixture(scope="session")
def fake_weights(tmp_path_factory):
    """A HED .weights.h5 of random weights in the Keras layout (tests/hed_numpy.py), and the arrays."""
    from .hed_numpy import random_weights, write_weights
    path = tmp_path_factory.mktemp("hed") / "random.weights.h5"
    weights = random_weights()
    write_weights(path, weights)
    return path, weights
