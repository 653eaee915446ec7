"""Helpers shared by tests."""
from __future__ import annotations

import dataclasses
import json
from typing import Any


def config_args(config: Any) -> list[str]:
    """Command-line options that rebuild ``config`` (as the stage commands read them)."""
    args = []
    for f in dataclasses.fields(config):
        value, name = getattr(config, f.name), f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(f"--{name}" if value else f"--no-{name}")
        elif isinstance(value, tuple):
            args += [f"--{name}", json.dumps(value)]
        else:
            args += [f"--{name}", str(value)]
    return args


SITECUSTOMIZE = '''
"""Loaded by every Python process of a test (the CLI and its loky workers), through PYTHONPATH: makes
the boxes stage misbehave on chosen images, as a real worker can (killed, or stuck on one image)."""
import os
if os.environ.get("PSEUDOLABEL_TEST_CRASH") or os.environ.get("PSEUDOLABEL_TEST_SLEEP"):
    import dataclasses
    import signal
    import time

    import pseudolabel.stages as stages
    import pseudolabel.stages.boxes as boxes
    crash = set(os.environ.get("PSEUDOLABEL_TEST_CRASH", "").split(","))
    awake = set(os.environ.get("PSEUDOLABEL_TEST_AWAKE", "").split(","))
    real = boxes.process_image

    def process_image(record, image, config, inputs=None, context=None):
        if record.image_id in crash:
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("PSEUDOLABEL_TEST_SLEEP") and record.image_id not in awake:
            time.sleep(float(os.environ["PSEUDOLABEL_TEST_SLEEP"]))
        return real(record, image, config, inputs, context)
    stages.STAGES._loaded["boxes"] = dataclasses.replace(boxes.STAGE, process_image=process_image)
'''


def misbehaving_env(folder, **variables) -> dict:
    """An environment whose Python processes load :data:`SITECUSTOMIZE` from ``folder``."""
    import os
    from pathlib import Path
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = dict(os.environ, PYTHONPATH=path)
    env.update({f"PSEUDOLABEL_TEST_{k.upper()}": str(v) for k, v in variables.items()})
    return env
