from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from pseudolabel.catalog import load_image, open_dataset
from pseudolabel.core.classes import NUM_CLASSES
from pseudolabel.core.errors import StoreError
from pseudolabel.core.labels import box_masks, filling_rates, paint_smaller_on_top
from pseudolabel.runner import run
from pseudolabel.core.output_root import journal_dir as partial_dir
from pseudolabel.store import FORMAT_VERSION, LabelStore, describe
from pseudolabel.store.journal import Journal


@pytest.fixture
def boxes_store(voc_root, tmp_path):
    summary = run("boxes", None, open_dataset(voc_root), "train", tmp_path / "cache", progress=False)
    return summary.store


def test_round_trip_matches_records(voc_root, boxes_store):
    store = LabelStore(boxes_store, load_masks=True)
    recs = open_dataset(voc_root).records("train")
    assert store.ids == [r.image_id for r in recs] and len(store) == 6
    assert store.meta["stage"] == "boxes" and store.meta["split"] == "train"
    assert store.meta["format_version"] == FORMAT_VERSION and store.config == {}
    for i, r in enumerate(recs):
        s = store[i]
        assert s.image_id == r.image_id and store[r.image_id].image_id == r.image_id
        assert (s.boxes == r.boxes()).all() and (s.classes == r.classes()).all()
        assert (s.difficult == r.flags("difficult")).all()
        masks = box_masks(r.boxes(), (r.height, r.width))
        assert (s.masks == masks).all()
        label = paint_smaller_on_top(masks, r.classes(), r.boxes())
        assert (s.label == label).all() and s.label.dtype == np.uint8
        np.testing.assert_array_equal(s.filling_rate, filling_rates(label, r.boxes(), r.classes()))
        assert s.filling_rate.shape == (NUM_CLASSES,)


def test_lookup_errors(boxes_store):
    store = LabelStore(boxes_store)
    with pytest.raises(KeyError, match="not in store"):
        store["nope"]
    with pytest.raises(IndexError):
        store[100]


def test_lazy_open_and_pickle(boxes_store):
    store = LabelStore(boxes_store)
    assert store._file is None                   # nothing held open after construction
    _ = store[0]
    clone = pickle.loads(pickle.dumps(store))    # what DataLoader workers receive
    assert clone._file is None and (clone[0].label == store[0].label).all()


def test_refuses_incomplete_store(tmp_path):
    path = tmp_path / "boxes.h5"
    Journal(partial_dir(path)).start({"stage": "boxes", "ids": ["a", "b"]})
    with pytest.raises(StoreError, match="incomplete.*0 of 2 images.*rerun it to finish"):
        LabelStore(path)
    assert describe(path)["complete"] is False


def test_refuses_wrong_version_and_foreign_files(boxes_store, tmp_path):
    with h5py.File(boxes_store, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(StoreError, match=f"format version {FORMAT_VERSION + 1} is not supported"):
        LabelStore(boxes_store)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["x"] = 1
    with pytest.raises(StoreError, match="not a pseudolabel label store"):
        LabelStore(other)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n" + b"0" * 100)
    with pytest.raises(StoreError, match="not a readable HDF5 file"):
        LabelStore(junk)
    with pytest.raises(StoreError, match="no such label store"):
        LabelStore(tmp_path / "missing.h5")


def test_refuses_store_marked_incomplete(boxes_store):
    with h5py.File(boxes_store, "a") as f:
        f.attrs["complete"] = False
    with pytest.raises(StoreError, match="marked incomplete"):
        LabelStore(boxes_store)


def test_torch_dataset_adapter(voc_root, boxes_store):
    import torch
    from torch.utils.data import DataLoader

    from pseudolabel.store import LabelDataset

    ds = LabelDataset(boxes_store)
    item = ds[1]
    rec = open_dataset(voc_root).records("train")[1]
    assert item["image"].shape == (3, rec.height, rec.width) and item["image"].dtype == torch.uint8
    assert (item["image"].permute(1, 2, 0).numpy() == load_image(rec)).all()
    assert item["label"].dtype == torch.int64 and item["label"].shape == (rec.height, rec.width)
    assert item["boxes"].shape == (len(rec.objects), 4) and item["filling_rate"].shape == (21,)
    loader = DataLoader(ds, batch_size=None, num_workers=2)
    seen = [b["image_id"] for b in loader]
    assert seen == LabelStore(boxes_store).ids


def test_torch_dataset_reroots_images(voc_root, boxes_store, tmp_path):
    from pseudolabel.store import LabelDataset

    moved = tmp_path / "moved"
    voc_root.rename(moved)
    assert LabelDataset(boxes_store, data_root=moved)[0]["image"].shape[0] == 3


@pytest.mark.parametrize("shape, dtype", [((37, 53), np.uint8), ((3, 37, 53), np.uint8),
                                          ((2, 37, 53), np.float16), ((0, 37, 53), np.uint8)])
def test_precompressed_chunks_read_back_through_plain_hdf5(tmp_path, shape, dtype):
    """Workers compress chunks themselves (shuffle + deflate, as HDF5's filters would); any
    HDF5 reader must decode them to the original values."""
    from pseudolabel.store.schema import ChunkedArray

    rng = np.random.default_rng(0)
    array = (rng.random(shape) * (1 if dtype == np.float16 else 255)).astype(dtype)
    encoded = ChunkedArray.encode(array)
    assert (encoded.decode() == array).all() and encoded.decode().shape == shape
    with h5py.File(tmp_path / "x.h5", "w") as f:
        encoded.write(f, "a")
    with h5py.File(tmp_path / "x.h5", "r") as f:
        ds = f["a"]
        assert ds.dtype == dtype and ds.shape == shape
        np.testing.assert_array_equal(ds[()], array)
        if array.size:
            assert ds.compression == "gzip" and ds.shuffle == (np.dtype(dtype).itemsize > 1)


def test_photos_of_different_sizes_batch_with_collate_padded(tmp_path):
    """A plain DataLoader(batch_size=4) cannot stack the demo's photos (four sizes); collate_padded
    pads photos with 0 and labels with 255, and keeps each item's size and objects."""
    import torch
    from torch.utils.data import DataLoader

    from pseudolabel.app.demo import build_demo_dataset
    from pseudolabel.runner import run
    from pseudolabel.store import LabelDataset, collate_padded

    dataset = open_dataset(build_demo_dataset(tmp_path / "demo"))
    store = LabelStore(run("boxes", None, dataset, "train", tmp_path / "c", progress=False).store)
    ds = LabelDataset(store)
    with pytest.raises(RuntimeError):
        next(iter(DataLoader(ds, batch_size=4)))
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_padded)))
    h, w = max(ds[i]["label"].shape[0] for i in range(4)), max(ds[i]["label"].shape[1] for i in range(4))
    assert batch["image"].shape == (4, 3, h, w) and batch["label"].shape == (4, h, w)
    assert batch["filling_rate"].shape == (4, 21) and batch["image_id"] == store.ids
    for b in range(4):
        item, (ih, iw) = ds[b], batch["size"][b].tolist()
        assert (ih, iw) == tuple(item["label"].shape)
        assert torch.equal(batch["image"][b, :, :ih, :iw], item["image"])
        assert torch.equal(batch["label"][b, :ih, :iw], item["label"])
        assert (batch["label"][b, ih:] == 255).all() and (batch["label"][b, :, iw:] == 255).all()
        assert (batch["image"][b, :, ih:] == 0).all()
        assert torch.equal(batch["boxes"][b], item["boxes"])
    with pytest.raises(ValueError, match="empty batch"):
        collate_padded([])


def test_readers_and_the_writer_bound_hdf5s_metadata_cache(boxes_store, tmp_path):
    """A pass over a store touches every image's group once; HDF5's default metadata cache kept
    them all (a train_aug export grew to 485 MiB). Readers, the index and the writer bound it."""
    import h5py

    from pseudolabel.store.index import open_checked
    from pseudolabel.store.schema import METADATA_CACHE_BYTES, small_metadata_cache

    store = LabelStore(boxes_store)
    store[0]
    assert store._handle().id.get_mdc_config().max_size == METADATA_CACHE_BYTES
    with open_checked(boxes_store) as f:
        assert f.id.get_mdc_config().max_size == METADATA_CACHE_BYTES
    with h5py.File(tmp_path / "x.h5", "w") as f:
        assert f.id.get_mdc_config().max_size > METADATA_CACHE_BYTES        # HDF5's default is larger
        assert small_metadata_cache(f).id.get_mdc_config().max_size == METADATA_CACHE_BYTES
