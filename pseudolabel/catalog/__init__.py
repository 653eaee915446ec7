"""Dataset catalog: the only code that knows folder layouts and coordinate conventions.

These layouts are recognised under a data root (``layouts.open_dataset``); besides the VOC and SBD
ones below, COCO instances JSON (``coco.py``) and YOLO labels (``yolo.py``), each with its own
classes (``Dataset.labels``, a ``core.classes.LabelSpace``):

* **PASCAL VOC 2012** (the root itself, ``VOC2012/`` or ``VOCdevkit/VOC2012/``):
  ``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``, ``ImageSets/Segmentation/<split>.txt``,
  and for evaluation ``SegmentationClass/<id>.png`` / ``SegmentationObject/<id>.png``
  (palette PNGs, 255 = void). Splits: every ``<split>.txt`` in ``ImageSets/Segmentation``.
* **SBD** (the root itself, ``SBD/``, ``benchmark_RELEASE/dataset/`` or ``dataset/``): ``img/<id>.jpg``,
  ``cls/<id>.mat`` (struct ``GTcls``), ``inst/<id>.mat`` (struct ``GTinst``),
  ``train.txt``, ``val.txt``. Splits ``train`` and ``val``; boxes are the tight boxes of the
  instance masks.
* **Both under one root**: the VOC splits, ``sbd_train``, ``sbd_val`` and ``train_aug``
  (SBD train + SBD val + VOC train, minus VOC val; 10,582 images on the real data). For an
  image VOC annotates, boxes come from its XML and ground truth from ``SegmentationClass``;
  otherwise both come from SBD.

Stages never see files: they get :class:`~pseudolabel.core.records.ImageRecord` objects and call
:func:`load_image`. Boxes are converted once, here, from VOC's 1-based inclusive corners to
the package's 0-based half-open convention (see :mod:`pseudolabel.core.records`).
"""
from __future__ import annotations

from .files import EDGE_MODES, edge_file, mcg_file, read_edge_map, read_mcg_proposals
from .dataset import Dataset, Record
from .layouts import SBD_CANDIDATES, VOC_CANDIDATES, VocSbd, open_dataset
from .pixels import load_class_gt, load_image, load_object_gt
from .sbd import read_sbd_instances
from .voc import parse_voc_xml

__all__ = ["EDGE_MODES", "SBD_CANDIDATES", "VOC_CANDIDATES", "Dataset", "Record", "VocSbd", "edge_file", "load_class_gt",
           "load_image", "load_object_gt", "mcg_file", "open_dataset", "parse_voc_xml", "read_edge_map",
           "read_mcg_proposals", "read_sbd_instances"]
