"""pseudolabel: box annotations (PASCAL VOC 2012 / SBD) to pseudo segmentation labels in
documented HDF5 label stores."""
__version__ = "0.1.0"
