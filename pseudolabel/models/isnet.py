"""IS-Net (Qin et al., "Highly Accurate Dichotomous Image Segmentation", ECCV 2022), the
class-agnostic salient-object segmenter, run through onnxruntime on box crops.

The ONNX files users have (rembg's ``isnet-general-use.onnx``, the same network re-exported) are
traced at one input size, 1024 x 1024: every upsampling's target size is baked into the graph as
a constant. :func:`dynamic_sizes` rewrites each of them to the size of the tensor it is
concatenated with (or of the input, for the side outputs), so that the same weights run at any
input size and batch (512, 320, ...; at 1024 the outputs equal the original graph's to 1e-5).
This needs the ``onnx`` package besides ``onnxruntime`` (``pip install '.[isnet]'``).

Input: RGB / 255 minus 0.5 (std 1.0), as rembg's session prepares it; output ``output`` (the first),
the foreground probability, already in [0, 1] (rembg rescales it to its min..max per image; we
keep it as a probability).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError

DEFAULT_WEIGHTS = Path("~/.u2net/isnet-general-use.onnx")
"""Where rembg users keep IS-Net's general-use weights."""
WHERE = ("rembg downloads it there on first use (github.com/danielgatis/rembg, model "
         "'isnet-general-use'); the weights are those of xuebinqin/DIS (isnet-general-use), as ONNX")


def weights_path(weights: str | os.PathLike = "") -> Path:
    """The ONNX file to use, or a ConfigError naming the file and where it comes from."""
    path = Path(weights).expanduser() if weights else DEFAULT_WEIGHTS.expanduser()
    if not path.is_file():
        raise ConfigError(f"IS-Net weights not found: {path}. Pass --weights with an IS-Net ONNX file "
                          f"(isnet-general-use.onnx; {WHERE})")
    return path


def _imports():
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise ConfigError("the isnet engine needs onnxruntime and onnx: pip install -c constraints.txt "
                          "'pseudolabel[isnet]'") from None
    return onnx, onnxruntime


def dynamic_sizes(model):
    """``model`` (an ``onnx.ModelProto`` of IS-Net traced at one size) with every Resize's output
    size taken from the graph at run time: the spatial size of the tensor its output is
    concatenated with, else of the input image; input and outputs get symbolic batch and size."""
    import onnx
    from onnx import helper, numpy_helper
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    g.initializer.extend([numpy_helper.from_array(np.array([2], np.int64), "pl_start"),
                          numpy_helper.from_array(np.array([4], np.int64), "pl_end")])
    added = []
    for r in [n for n in g.node if n.op_type == "Resize"]:
        out = r.output[0]
        after = users.get(out, [])
        if len(after) == 1 and after[0].op_type == "Cast":
            out = after[0].output[0]
            after = users.get(out, [])
        concat = next((u for u in after if u.op_type == "Concat"), None)
        target = next((i for i in concat.input if i != out), None) if concat is not None else None
        sizes = producer.get(r.input[3]) if len(r.input) > 3 else None
        if sizes is None or sizes.op_type != "Concat":
            continue
        baked = [i for i in sizes.input if i in producer and producer[i].op_type == "Constant"]
        if len(baked) != 1:
            continue
        shape, hw = f"pl_shape_{r.name}", f"pl_hw_{r.name}"
        added += [helper.make_node("Shape", [target or g.input[0].name], [shape]),
                  helper.make_node("Slice", [shape, "pl_start", "pl_end"], [hw])]
        sizes.input[list(sizes.input).index(baked[0])] = hw
    g.node.extend(added)
    _topological(g)
    del g.value_info[:]
    for t in list(g.input) + list(g.output):
        dims = t.type.tensor_type.shape.dim
        for i, name in ((0, "batch"), (2, "height"), (3, "width")):
            if len(dims) > i:
                dims[i].ClearField("dim_value")
                dims[i].dim_param = name
    onnx.checker.check_model(model)
    return model


def _topological(graph) -> None:
    """Reorder ``graph``'s nodes so that each comes after the nodes its inputs come from."""
    have = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    ordered, pending = [], list(graph.node)
    while pending:
        ready = [n for n in pending if all(i in have for i in n.input)]
        if not ready:
            raise ConfigError("the IS-Net ONNX graph has nodes whose inputs nothing produces")
        for n in ready:
            have |= set(n.output)
        ordered += ready
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)


def load_isnet(weights: str | os.PathLike = "", device: str = "cpu", threads: int = 0):
    """An onnxruntime session of IS-Net at any input size, on ``device`` (CUDA's provider where
    onnxruntime has it and the device is a GPU)."""
    onnx, ort = _imports()
    path = weights_path(weights)
    try:
        model = dynamic_sizes(onnx.load(str(path)))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
        raise ConfigError(f"{path}: not an IS-Net ONNX model ({type(exc).__name__}: {exc})") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.partition(":")[2] or 0)
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ort.InferenceSession(model.SerializeToString(), options, providers=providers)


def isnet_batch(session, crops: list[np.ndarray], size: int) -> list[np.ndarray]:
    """Foreground probabilities (h, w) float32 in [0, 1] of RGB uint8 crops, each resized to
    ``size`` x ``size`` for the network (one batch) and its output resized back."""
    import cv2
    x = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_LINEAR) for c in crops]).astype(np.float32)
    x = (x / 255.0 - 0.5).transpose(0, 3, 1, 2)
    out = session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
    return [np.clip(cv2.resize(o[0], (c.shape[1], c.shape[0]), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
            for o, c in zip(out, crops)]
