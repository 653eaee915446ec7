from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from PIL import Image

from pseudolabel.catalog import open_dataset
from pseudolabel.core.errors import ConfigError, DataError, StoreError
from pseudolabel.core.output_root import journal_dir as partial_dir
from pseudolabel.runner import resolve_target, RunOptions, run
from pseudolabel.store import LabelStore
from pseudolabel.store.reader import describe

from .conftest import store_contents
from .synth import make_voc_tree


def keyed(stage, root, split, cache, config=None):
    """The keyed store path a run of ``stage`` with ``config`` writes."""
    from pseudolabel.stages import get_stage
    config = config if config is not None else get_stage(stage).config_class()
    return resolve_target(stage, config, open_dataset(root), split, cache).store


def test_jobs_1_and_2_give_identical_stores(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    a = run("boxes", None, ds, "trainval", tmp_path / "a", RunOptions(jobs=1), progress=False).store
    b = run("boxes", None, ds, "trainval", tmp_path / "b", RunOptions(jobs=2), progress=False).store
    assert store_contents(a) == store_contents(b)


def test_second_run_has_nothing_to_do_and_force_recomputes(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    first = run("boxes", None, ds, "train", tmp_path, progress=False)
    assert first.processed == 6 and not first.nothing_to_do
    again = run("boxes", None, ds, "train", tmp_path, progress=False)
    assert again.nothing_to_do and "nothing to do" in again.lines()[0]
    forced = run("boxes", None, ds, "train", tmp_path, RunOptions(force=True), progress=False)
    assert forced.processed == 6


def test_fail_stops_with_message_and_keeps_finished_images(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    Image.new("RGB", (10, 10)).save(voc_root / "JPEGImages" / "2012_000003.jpg")
    with pytest.raises(DataError, match=r"2012_000003\.jpg: image is 10x10 but its annotation"):
        run("boxes", None, ds, "train", tmp_path, progress=False)
    journal = partial_dir(keyed("boxes", voc_root, "train", tmp_path))
    assert sorted(os.listdir(journal)) == ["2012_000000.npz", "2012_000001.npz", "2012_000002.npz",
                                           "manifest.json", "run-000.json"]


def test_bad_annotation_fails_before_any_work(voc_root, tmp_path):
    (voc_root / "Annotations" / "2012_000004.xml").write_text("<annotation>")
    with pytest.raises(DataError, match=r"2012_000004\.xml: malformed XML"):
        run("boxes", None, open_dataset(voc_root), "train", tmp_path, progress=False)


def test_skip_records_failures_with_reasons(voc_root, tmp_path):
    (voc_root / "Annotations" / "2012_000004.xml").write_text("<annotation>")
    (voc_root / "JPEGImages" / "2012_000001.jpg").unlink()
    summary = run("boxes", None, open_dataset(voc_root), "train", tmp_path, RunOptions(on_error="skip"), progress=False)
    assert summary.failed == 2 and summary.done == 4
    assert any("2 image(s) failed" in line for line in summary.lines())
    store = LabelStore(summary.store)
    assert len(store) == 4 and set(store.failed) == {"2012_000001", "2012_000004"}
    assert "image file is missing" in store.failed["2012_000001"]
    assert "malformed XML" in store.failed["2012_000004"]
    with pytest.raises(KeyError, match="failed in this run"):
        store["2012_000001"]


def test_resume_after_fail_then_fix(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    image = voc_root / "JPEGImages" / "2012_000003.jpg"
    good = image.read_bytes()
    image.write_bytes(b"junk")
    with pytest.raises(DataError):
        run("boxes", None, ds, "train", tmp_path, progress=False)
    image.write_bytes(good)
    resumed = run("boxes", None, ds, "train", tmp_path, progress=False)
    assert resumed.resumed == 3 and resumed.processed == 3
    reference = run("boxes", None, ds, "train", tmp_path / "ref", progress=False)
    assert store_contents(resumed.store) == store_contents(reference.store)


def test_a_recomputed_upstream_store_is_read_afresh_in_the_same_process(voc_root, tmp_path):
    """Runs with jobs=1 read upstream stores in this process, which keeps them open: a store
    replaced under the same path (--force) must not be served from the old handle."""
    from pseudolabel.stages import get_stage
    ds = open_dataset(voc_root)
    fuse = get_stage("fuse").config_class(sources="grabcut,boxes")
    for stage in ("grabcut", "boxes"):
        run(stage, None, ds, "train", tmp_path, progress=False)
    first = store_contents(run("fuse", fuse, ds, "train", tmp_path, progress=False).store)
    for name in ("2012_000000", "2012_000001", "2012_000002"):     # other pixels, same boxes
        path = voc_root / "JPEGImages" / f"{name}.jpg"
        Image.open(path).transpose(Image.Transpose.ROTATE_180).save(path)
    run("grabcut", None, ds, "train", tmp_path, RunOptions(force=True), progress=False)
    again = run("fuse", fuse, ds, "train", tmp_path, RunOptions(force=True), progress=False)
    ref = tmp_path / "ref"
    for stage in ("grabcut", "boxes"):
        run(stage, None, ds, "train", ref, progress=False)
    reference = run("fuse", fuse, ds, "train", ref, progress=False).store
    images = {k: v for k, v in store_contents(again.store).items() if k.startswith("images")}
    assert images == {k: v for k, v in store_contents(reference).items() if k.startswith("images")}
    assert images != {k: v for k, v in first.items() if k.startswith("images")}


def _images(path) -> dict:
    """A store's per-image contents (entries and index), without run metadata."""
    return {k: v for k, v in store_contents(path).items() if k.startswith(("images", "index"))}


def test_retry_failed_redoes_only_the_failed_images_and_keeps_the_rest(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    image = voc_root / "JPEGImages" / "2012_000003.jpg"
    good = image.read_bytes()
    image.write_bytes(b"junk")
    first = run("boxes", None, ds, "train", tmp_path, RunOptions(on_error="skip"), progress=False)
    assert (first.done, first.failed) == (5, 1)
    kept = {k: v for k, v in _images(first.store).items() if "2012_000003" not in k and "index" not in k}
    again = run("boxes", None, ds, "train", tmp_path, progress=False)
    assert again.nothing_to_do and "--retry-failed redoes the 1 failed" in again.lines()[0]

    image.write_bytes(good)
    retry = run("boxes", None, ds, "train", tmp_path, RunOptions(retry_failed=True), progress=False)
    assert (retry.processed, retry.retried, retry.done, retry.failed) == (1, 1, 6, 0)
    assert "retried 1 image(s) that had failed" in retry.lines()[0]
    assert retry.store == first.store and not partial_dir(retry.store).exists()
    after = _images(retry.store)
    assert all(after[k] == v for k, v in kept.items())            # the done images, as they were
    reference = run("boxes", None, ds, "train", tmp_path / "ref", progress=False)
    assert after == _images(reference.store)
    sessions = json.loads(describe(retry.store)["run_log"])
    assert len(sessions) == 2 and sessions[1]["retry_failed"] == 1 and sessions[1]["processed"] == 1
    assert run("boxes", None, ds, "train", tmp_path, RunOptions(retry_failed=True), progress=False).nothing_to_do
    with pytest.raises(ConfigError, match="pass one"):
        run("boxes", None, ds, "train", tmp_path, RunOptions(retry_failed=True, force=True), progress=False)


def test_interrupted_retry_resumes(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    images = [voc_root / "JPEGImages" / f"2012_00000{k}.jpg" for k in (1, 4)]
    good = [p.read_bytes() for p in images]
    for p in images:
        p.write_bytes(b"junk")
    first = run("boxes", None, ds, "train", tmp_path, RunOptions(on_error="skip"), progress=False)
    assert first.failed == 2
    images[0].write_bytes(good[0])
    with pytest.raises(DataError, match="2012_000004"):          # still broken: stops, store untouched
        run("boxes", None, ds, "train", tmp_path, RunOptions(retry_failed=True), progress=False)
    assert LabelStore(first.store).failed.keys() == {"2012_000001", "2012_000004"}
    images[1].write_bytes(good[1])
    retry = run("boxes", None, ds, "train", tmp_path, RunOptions(retry_failed=True), progress=False)
    assert (retry.resumed, retry.processed, retry.retried, retry.failed) == (1, 1, 2, 0)
    assert _images(retry.store) == _images(run("boxes", None, ds, "train", tmp_path / "ref", progress=False).store)


def test_retry_failed_downstream_of_a_retried_store(voc_root, tmp_path):
    """Fixing a photo and retrying grabcut changes only that image of the grabcut store, so
    fuse (which failed on it) can retry too; without --retry-failed, the changed upstream store
    is refused as before."""
    from pseudolabel.stages import get_stage
    ds = open_dataset(voc_root)
    fuse = get_stage("fuse").config_class(sources="grabcut,boxes")
    image = voc_root / "JPEGImages" / "2012_000002.jpg"
    good = image.read_bytes()
    image.write_bytes(b"junk")
    for stage in ("grabcut", "boxes"):
        run(stage, None, ds, "train", tmp_path, RunOptions(on_error="skip"), progress=False)
    fused = run("fuse", fuse, ds, "train", tmp_path, RunOptions(on_error="skip"), progress=False)
    assert "failed in stage 'grabcut'" in LabelStore(fused.store).failed["2012_000002"]
    image.write_bytes(good)
    for stage in ("grabcut", "boxes"):
        assert run(stage, None, ds, "train", tmp_path, RunOptions(retry_failed=True), progress=False).retried == 1
    with pytest.raises(StoreError, match="different upstream stores; use --force"):
        run("fuse", fuse, ds, "train", tmp_path, progress=False)
    retry = run("fuse", fuse, ds, "train", tmp_path, RunOptions(retry_failed=True), progress=False)
    assert (retry.processed, retry.failed) == (1, 0)
    ref = tmp_path / "ref"
    for stage in ("grabcut", "boxes"):
        run(stage, None, ds, "train", ref, progress=False)
    assert _images(retry.store) == _images(run("fuse", fuse, ds, "train", ref, progress=False).store)


def test_revision_one_keeps_the_keys_of_older_stores():
    import hashlib
    from pseudolabel.runner import cache_key
    from pseudolabel.stages import get_stage
    import dataclasses
    cfg = get_stage("grabcut").config_class()
    before = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if not f.metadata.get("since")}
    older = json.dumps({"config": json.loads(json.dumps(before, sort_keys=True)),     # options of then
                        "inputs": {"boxes": "0123456789ab"}}, sort_keys=True)   # before revisions
    assert cache_key(cfg, {"boxes": "0123456789ab"}) == hashlib.sha256(older.encode()).hexdigest()[:12]
    assert cache_key(cfg, {}, revision=2) != cache_key(cfg, {}) != cache_key(cfg, {}, revision=3)


def test_a_raised_stage_revision_recomputes_the_stage_and_what_reads_it(voc_root, tmp_path, monkeypatch):
    import dataclasses
    from pseudolabel.stages import STAGES, get_stage
    ds = open_dataset(voc_root)
    fuse = get_stage("fuse").config_class(sources="grabcut,boxes")
    old = {s: run(s, fuse if s == "fuse" else None, ds, "train", tmp_path, progress=False)
           for s in ("boxes", "grabcut", "fuse")}
    assert LabelStore(old["grabcut"].store).meta["stage_revision"] == 1
    # the grabcut code changed under the same options: its module raises the revision
    monkeypatch.setitem(STAGES._loaded, "grabcut", dataclasses.replace(get_stage("grabcut"), revision=2))
    new = {s: run(s, fuse if s == "fuse" else None, ds, "train", tmp_path, progress=False)
           for s in ("boxes", "grabcut", "fuse")}
    assert new["boxes"].nothing_to_do and new["boxes"].store == old["boxes"].store
    for s in ("grabcut", "fuse"):
        assert not new[s].nothing_to_do and new[s].store != old[s].store and old[s].store.exists()
    assert LabelStore(new["grabcut"].store).meta["stage_revision"] == 2
    assert "(revision 2)" in subprocess.run([sys.executable, "-m", "pseudolabel", "info", str(new["grabcut"].store)],
                                            capture_output=True, text=True).stdout


def test_each_configuration_has_its_own_store_and_the_current_link_follows_runs(voc_root, tmp_path):
    from pseudolabel.stages import get_stage
    ds = open_dataset(voc_root)
    cfg = get_stage("grabcut").config_class
    current = tmp_path / "VOC2012" / "train" / "grabcut.h5"
    a = run("grabcut", cfg(iterations=1), ds, "train", tmp_path, progress=False)
    assert current.is_symlink() and current.resolve() == a.store.resolve()
    assert a.store.parent.name == "grabcut" and a.store.stem == LabelStore(current).meta["cache_key"]
    b = run("grabcut", cfg(iterations=2), ds, "train", tmp_path, progress=False)
    assert b.store != a.store and not b.nothing_to_do and a.store.exists()   # old output kept
    assert current.resolve() == b.store.resolve() and LabelStore(current).config["iterations"] == 2
    back = run("grabcut", cfg(iterations=1), ds, "train", tmp_path, progress=False)
    assert back.nothing_to_do and current.resolve() == a.store.resolve()    # reused, made current
    # a downstream store is keyed by its upstream stores too: same fuse options, new key
    fuse = get_stage("fuse").config_class(sources="grabcut,boxes")
    run("boxes", None, ds, "train", tmp_path, progress=False)
    over_a = run("fuse", fuse, ds, "train", tmp_path, progress=False)
    run("grabcut", cfg(iterations=2), ds, "train", tmp_path, progress=False)
    over_b = run("fuse", fuse, ds, "train", tmp_path, progress=False)
    assert over_b.store != over_a.store and not over_b.nothing_to_do
    assert run("fuse", fuse, ds, "train", tmp_path, progress=False).nothing_to_do


def test_changed_configuration_or_dataset_is_refused(voc_root, tmp_path):
    ds = open_dataset(voc_root)
    run("boxes", None, ds, "train", tmp_path, progress=False)
    other = make_voc_tree(tmp_path / "elsewhere" / "VOC2012", n_images=8)
    with pytest.raises(StoreError, match="different dataset.*--force"):
        run("boxes", None, open_dataset(other), "train", tmp_path, progress=False)


KILLER = """
import os, signal, sys
from pseudolabel.store import journal, writer
from pseudolabel.store.entry import Entry
mode, n = sys.argv[1], int(sys.argv[2])
count = [0]

def kill_at_n():
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)

if mode == "after-put":          # right after the n-th image of this session is in the journal
    put = journal.Journal.put
    def killing_put(self, image_id, entry):
        put(self, image_id, entry)
        kill_at_n()
    journal.Journal.put = killing_put
elif mode == "mid-put":          # the n-th entry written to its temporary file, not yet renamed
    atomic = journal._atomic_write
    def killing_write(path, write):
        if path.suffix == ".npz" and count[0] + 1 == n:
            with open(path.with_name(path.name + f".tmp{os.getpid()}"), "wb") as fh:
                write(fh)
        if path.suffix == ".npz":
            kill_at_n()
        atomic(path, write)
    journal._atomic_write = killing_write
elif mode == "finalize":         # the store half-written under its temporary name
    write = Entry.write
    def killing_entry_write(self, group):
        write(self, group)
        kill_at_n()
    Entry.write = killing_entry_write
from pseudolabel.cli import cli
cli(sys.argv[3:], prog_name="pseudolabel")
"""

KILL_CASES = {
    # stage: (upstream stages run first, configuration)
    "boxes": ((), {}),
    "grabcut": ((), {}),
    "proposals": ((), {}),
    "refine": (("grabcut", "proposals"), {}),
    "fuse": (("grabcut", "boxes"), {"sources": "grabcut,boxes"}),
    "bbam": ((), {"weights": "toy", "steps": 5, "num_jitter": 50, "min_size": 128, "max_size": 256,
                  "batch_images": 3}),    # groups of photos: a resume must regroup them the same way
}


@pytest.mark.parametrize("stage", list(KILL_CASES))
def test_each_stage_killed_at_three_points_resumes_to_the_uninterrupted_store(tmp_path, stage):
    """SIGKILL (the process kills itself, so no timing is involved) right after the a-th image of a
    session reached the journal, then between writing the b-th entry and renaming it into the
    journal, then in the middle of writing the final store (a, b and the entry seeded per stage);
    resume, and compare with the same run uninterrupted (--force)."""
    import random

    from pseudolabel.core.output_root import tmp_path as store_tmp
    from pseudolabel.stages import get_stage

    from .helpers import config_args
    n = 9
    upstream, kwargs = KILL_CASES[stage]
    root = make_voc_tree(tmp_path / "VOC2012", n_images=n, size=(120, 160))
    cache = tmp_path / "cache"
    for name in upstream:
        run(name, None, open_dataset(root), "trainval", cache, progress=False)
    config = get_stage(stage).config_class(**kwargs)
    args = [stage, "--data-root", str(root), "--cache", str(cache), "--split", "trainval", *config_args(config)]
    store = resolve_target(stage, config, open_dataset(root), "trainval", cache).store
    journal = partial_dir(store)
    rng = random.Random(stage)
    points = [("after-put", rng.randint(1, 3)), ("mid-put", rng.randint(1, 3)), ("finalize", rng.randint(1, n))]
    if stage == "bbam":              # each kill starts torch anew (seconds); one kill inside a group of 3
        points = [("after-put", 4)]
    done, resumed_at = 0, []
    for mode, point in points:
        resumed_at.append(done)
        proc = subprocess.run([sys.executable, "-c", KILLER, mode, str(point), "-q", *args],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == -signal.SIGKILL, (mode, proc.returncode, proc.stderr[-2000:])
        assert not store.exists()                                      # never half-written
        entries = sorted(p.name for p in journal.iterdir() if p.name.endswith(".npz"))
        done = n if mode == "finalize" else done + point - (mode == "mid-put")
        assert len(entries) == done, (mode, entries)
    assert store_tmp(store).exists() == (points[-1][0] == "finalize")   # the half-written store
    logged = []
    rerun = run(stage, config, open_dataset(root), "trainval", cache, progress=False, log=logged.append)
    assert f"resuming {store}: {done} of {n} images already finished" in logged
    assert rerun.resumed == done and rerun.processed == n - done
    assert not journal.exists() and not store_tmp(store).exists()
    sessions = json.loads(describe(store)["run_log"])                 # the run log shows the interruptions
    # killed while working: no end; killed while writing the store: its images were all done
    assert [s["end"] is None for s in sessions] == [mode != "finalize" for mode, _ in points] + [False]
    assert [s["resumed"] for s in sessions] == resumed_at + [done]
    assert len({s["pid"] for s in sessions}) == len(points) + 1
    resumed = store_contents(store)
    config_again = get_stage(stage).config_class(**kwargs)
    run(stage, config_again, open_dataset(root), "trainval", cache, RunOptions(force=True), progress=False)
    assert resumed == store_contents(store)


def test_run_log_records_host_versions_and_counts(voc_root, tmp_path, invoke):
    import socket
    summary = run("boxes", None, open_dataset(voc_root), "train", tmp_path, RunOptions(jobs=2), progress=False)
    (session,) = json.loads(LabelStore(summary.store).meta["run_log"])
    assert session["host"] == socket.gethostname() and session["jobs"] == 2 and session["backend"] == "loky"
    assert session["processed"] == 6 and session["objects"] == summary.objects and session["failed"] == 0
    assert session["pseudolabel"] and session["torch"] and session["start"] <= session["end"]
    info = invoke("info", summary.store).output
    assert f"runs:        1 session(s), on {socket.gethostname()}" in info


def test_second_concurrent_run_is_refused(voc_root, tmp_path):
    from pseudolabel.store.journal import run_lock

    ds = open_dataset(voc_root)
    store = keyed("boxes", voc_root, "train", tmp_path)
    with run_lock(store):                       # as if another process were writing it
        child = subprocess.run(
            [sys.executable, "-m", "pseudolabel", "-q", "boxes", "--data-root", str(voc_root),
             "--cache", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 1
    assert f"another run is writing this store (pid {os.getpid()})" in child.stderr
    # the lock dies with its holder: the same run now goes through
    assert run("boxes", None, ds, "train", tmp_path, progress=False).done == 6
