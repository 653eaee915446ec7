"""Scores against human annotations, reading stores and the catalog's ground truth (never a
stage): semantic labels (``semantic``: confusion matrix, mIoU, coverage, paired bootstrap),
per-object masks (``instances``: instance IoU, COCO mask AP), segment proposals (``proposals``:
ABO, recall) and detectors (``detection``: PASCAL VOC box AP)."""
