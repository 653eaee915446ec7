"""What a user can trust: damaged stores are found and named, never a traceback (docs/RELIABILITY.md)."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from pseudolabel.catalog import open_dataset
from pseudolabel.errors import StoreError
from pseudolabel.runner import run_stage
from pseudolabel.store import LabelStore

from .synth import make_voc_tree


def _image_values(f: h5py.File, image_id: str) -> dict:
    """Every attribute and dataset of one image group, read with plain h5py."""
    g = f["images"][image_id]
    out = {f"@{k}": (v.tolist() if hasattr(v, "tolist") else v) for k, v in g.attrs.items()}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            v = obj[()]
            out[name] = (v.dtype.str, v.shape, v.tobytes())
        out[name + "@"] = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()}
    g.visititems(visit)
    return out


def _truth(original, copy, ids) -> tuple[bool, set[str]]:
    """What the damage really did, read with plain h5py against the original: whether the store as a
    whole (root attributes, index) is hurt, and which images read back differently or not at all."""
    with h5py.File(original, "r") as f:
        head = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}
        index = {k: f["index"][k][()].tolist() for k in f["index"]}
        images = {i: _image_values(f, i) for i in ids}
    try:
        f = h5py.File(copy, "r")
    except Exception:
        return True, set()
    with f:
        try:
            if ({k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()} != head
                    or {k: f["index"][k][()].tolist() for k in f["index"]} != index):
                return True, set()
        except Exception:
            return True, set()
        damaged = set()
        for i in ids:
            try:
                if _image_values(f, i) != images[i]:
                    damaged.add(i)
            except Exception:
                damaged.add(i)
    return False, damaged


@pytest.fixture(scope="module")
def grabcut_store(tmp_path_factory):
    root = make_voc_tree(tmp_path_factory.mktemp("data") / "VOC2012", n_images=24, size=(96, 128))
    cache = tmp_path_factory.mktemp("cache")
    summary = run_stage("grabcut", open_dataset(root), "trainval", cache, progress=False)
    return root, summary.store


DAMAGE = [(0.20, 4096), (0.35, 4096), (0.60, 4096), (0.80, 4096), (0.95, 4096), (0.50, 65536)]


@pytest.mark.parametrize("where, size", DAMAGE)
def test_a_damaged_block_is_found_by_check_and_named_by_every_reader(grabcut_store, tmp_path, invoke, where, size):
    """One block of a real store overwritten (4 KiB at 20/35/60/80/95% of the file, 64 KiB in the
    middle): ``info --check`` names exactly the images that no longer read back as written (or the
    store, when its index or attributes are hit) and exits 1; evaluate, export and LabelStore stop
    with one line naming the file and an image, never a traceback."""
    root, original = grabcut_store
    copy = tmp_path / "damaged.h5"
    shutil.copy(original, copy)
    data = bytearray(copy.read_bytes())
    start = int(where * len(data))
    rng = np.random.default_rng(int(where * 100) + size)
    data[start:start + size] = rng.integers(0, 256, len(data[start:start + size]), dtype=np.uint8).tobytes()
    copy.write_bytes(bytes(data))
    ids = LabelStore(original).ids
    whole, damaged = _truth(original, copy, ids)

    check = invoke("info", copy, "--check")
    assert "Traceback" not in check.output
    if not whole and not damaged:                        # the block held nothing that is read
        assert check.exit_code == 0 and "no damage found" in check.output
        return
    assert check.exit_code == 1, check.output
    if whole:
        assert f"Error: {copy}: " in check.output
    else:
        named = {line.split()[1].rstrip(":") for line in check.output.splitlines() if line.startswith("damaged ")}
        assert named == damaged, (named, damaged)
        assert f"{len(damaged)} of {len(ids)} image(s) damaged" in check.output

    result = invoke("evaluate", "--data-root", root, "--split", "trainval", "--store", copy)
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {copy}: ")
    if not whole:
        assert any(f"image '{i}'" in errors[0] for i in damaged)

        with pytest.raises(StoreError, match=f"{copy}: image '.*' is damaged"):
            for i in sorted(damaged):
                LabelStore(copy, load_masks=True)[i]

        cache = tmp_path / "cache"                       # export finds the store as the current grabcut store
        current = cache / "VOC2012" / "trainval" / "grabcut.h5"
        current.parent.mkdir(parents=True)
        current.symlink_to(copy)
        exported = invoke("export", "--data-root", root, "--cache", cache, "--split", "trainval", "--stage",
                          "grabcut", "--out", tmp_path / "png")
        assert exported.exit_code == 1 and "Traceback" not in exported.output
        assert f"Error: {current}: image '" in exported.output
    else:
        with pytest.raises(StoreError, match=str(copy)):
            LabelStore(copy)


def test_check_of_a_good_store_passes(grabcut_store, invoke):
    _, store = grabcut_store
    result = invoke("info", store, "--check")
    assert result.exit_code == 0, result.output
    assert "24 image(s) checked against their checksums: no damage found" in result.output
