"""HDF5 stores: names and compression (``schema``), per-image content (``entry``), the crash-safe
run journal (``journal``), the index and opening (``index``), the one finalize (``writer``), and
readers (``reader``; ``torch_dataset`` for a PyTorch trainer). Documented in ``docs/STORE.md``."""
from .index import StoreIndex
from .reader import EdgeMaps, EdgeStore, LabelStore, ProposalStore, Proposals, Sample, describe, open_store
from .schema import FORMAT_NAME, FORMAT_VERSION, PROPOSAL_FORMAT_NAME

__all__ = ["EdgeMaps", "EdgeStore", "LabelStore", "ProposalStore", "Proposals", "Sample", "StoreIndex", "describe", "open_store",
           "FORMAT_NAME", "FORMAT_VERSION", "PROPOSAL_FORMAT_NAME"]


def __getattr__(name):  # keep ``import pseudolabel.store`` free of torch
    if name in ("LabelDataset", "collate_padded"):
        from . import torch_dataset
        return getattr(torch_dataset, name)
    raise AttributeError(name)
