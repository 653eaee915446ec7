"""pseudolabel report: a static page that renders in a real headless browser, every picture present."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture
def report(invoke, voc_root, tmp_path):
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    for stage in ("boxes", "grabcut"):
        assert invoke(stage, "--split", "trainval", env=env).exit_code == 0
    out = tmp_path / "report"
    result = invoke("report", "--split", "trainval", "--stages", "boxes,grabcut", "--out", out,
                    "--examples", "2", env=env)
    assert result.exit_code == 0, result.output
    return out


def test_report_page_holds_every_stage_and_its_pictures(report):
    page = (report / "index.html").read_text()
    for text in ("boxes", "grabcut", "IoU per class", "Filling rate per class", "guard_", "worst", "median", "best"):
        assert text in page, text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(s.endswith("_large.png") for s in sources) and "iou_per_class.png" in sources
    for source in sources:                                    # nothing broken: each file there and a PNG
        assert Image.open(report / source).format == "PNG", source
    shown = [s for s in sources if s.startswith("overlays/") and not s.endswith("_large.png")]
    assert len(shown) == 6                                    # 2 worst, 2 median, 2 best of 8 images
    small, large = Image.open(report / shown[0]), Image.open(report / shown[0].replace(".png", "_large.png"))
    assert large.height == 3 * small.height


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (Debian: apt-get install chromium) to render the page")
def test_report_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1300,2600", f"--screenshot={shot}", (report / "index.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in np.unique(pixels, axis=0).tolist()}
    assert (31, 119, 180) in colours and (255, 127, 14) in colours    # both stages' bars: the plot rendered
    assert (40, 40, 40) in colours                                    # the legend strip
    assert len(colours) > 2000                                        # photos, not a blank page or icons


def test_report_refuses_what_it_cannot_show(invoke, voc_root):
    env = {"PSEUDOLABEL_DATA": str(voc_root)}
    missing = invoke("report", "--split", "train", "--stages", "grabcut", env=env)
    assert missing.exit_code != 0 and "no grabcut store" in missing.output and "pseudolabel grabcut" in missing.output
    proposals = invoke("report", "--split", "train", "--stages", "boxes,proposals", env=env)
    assert proposals.exit_code == 2 and "proposals: not a stage that makes labels" in proposals.output
