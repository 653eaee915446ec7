"""Networks and their weights: HED (``hed``), the torchvision Faster R-CNN adapter (``detector``)
and the planted test detector (``toydetector``), which device a run uses (``device``), and one
cache of loaded models per process, keyed by weights and device (``cache``). Nothing here reads a
dataset or a store."""
