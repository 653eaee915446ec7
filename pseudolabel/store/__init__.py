"""HDF5 label stores: schema (``schema``), crash-safe run journal (``journal``), readers
(``reader``; ``torch_dataset`` for a PyTorch trainer). Documented in ``docs/STORE.md``."""
from .reader import LabelStore, ProposalStore, Proposals, Sample, describe, open_store
from .schema import FORMAT_NAME, FORMAT_VERSION, PROPOSAL_FORMAT_NAME, partial_dir, store_path

__all__ = ["LabelStore", "ProposalStore", "Proposals", "Sample", "describe", "open_store", "FORMAT_NAME",
           "FORMAT_VERSION", "PROPOSAL_FORMAT_NAME", "partial_dir", "store_path"]


def __getattr__(name):  # keep ``import pseudolabel.store`` free of torch
    if name == "LabelDataset":
        from .torch_dataset import LabelDataset
        return LabelDataset
    raise AttributeError(name)
