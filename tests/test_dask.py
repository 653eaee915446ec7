"""CPU stages on a real dask.distributed cluster (two worker processes) give the local store."""
from __future__ import annotations

import pytest

from pseudolabel.catalog import open_dataset
from pseudolabel.core.errors import ConfigError
from pseudolabel.runner import RunOptions, run
from pseudolabel.runner import dask_client

from .conftest import store_contents

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


def test_dask_cluster_gives_the_same_store_as_a_local_run(voc_root, tmp_path, cluster):
    ds = open_dataset(voc_root)
    local = run("grabcut", None, ds, "trainval", tmp_path / "local", RunOptions(jobs=1), progress=False).store
    with dask_client(cluster.scheduler_address) as observer:
        with distributed.get_task_stream(observer) as tasks:
            remote = run("grabcut", None, ds, "trainval", tmp_path / "dask",
                         RunOptions(backend="dask", scheduler=cluster.scheduler_address), progress=False)
    assert store_contents(remote.store) == store_contents(local)
    assert len(tasks.data) > 0                                  # the work ran on the cluster's workers
    assert {t["worker"] for t in tasks.data} <= set(cluster.scheduler_info["workers"])


def test_dask_backend_through_the_cli(invoke, voc_root, tmp_path, cluster):
    result = invoke("boxes", "--data-root", voc_root, "--cache", tmp_path / "c", "--backend", "dask",
                    "--scheduler", cluster.scheduler_address)
    assert result.exit_code == 0, result.output
    local = run("boxes", None, open_dataset(voc_root), "train", tmp_path / "l", progress=False).store
    assert store_contents(tmp_path / "c" / "VOC2012" / "train" / "boxes.h5") == store_contents(local)


def test_dask_needs_a_scheduler_and_names_an_unreachable_one(invoke, voc_root):
    result = invoke("boxes", "--data-root", voc_root, "--backend", "dask")
    assert result.exit_code == 2 and "--backend dask needs --scheduler ADDRESS" in result.output
    with pytest.raises(ConfigError, match="cannot reach the dask scheduler at tcp://127.0.0.1:1"):
        with dask_client("tcp://127.0.0.1:1", timeout="1s"):
            pass
    with pytest.raises(ConfigError, match="only used with --backend dask"):
        RunOptions(scheduler="tcp://127.0.0.1:1")
