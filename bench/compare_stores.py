"""Compare every keyed store under two output roots: the same file names (cache keys), the same
datasets (dtype, shape and bytes) and attributes, leaving out what differs between any two runs
(timestamps, the run log, per-image seconds, and the upstream stores' paths and completion times).

    python bench/compare_stores.py OLD_CACHE NEW_CACHE [STAGE ...]   # exit 1 when any store differs

With STAGE names, only those stages' stores are compared.

Used to check that a refactoring leaves every store bit for bit as it was (docs/ARCHITECTURE.md).
"""
import json
import sys
from pathlib import Path

import h5py
import numpy as np

SKIP = {"created", "completed", "run_log", "seconds", "inputs", "index_crc32"}


def _value(obj):
    v = obj[()]
    if isinstance(v, np.ndarray) and v.dtype != object:
        return v.dtype.str, v.shape, v.tobytes()            # NaN-safe equality
    return v.tolist() if isinstance(v, np.ndarray) else v


def contents(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            out[name + "@attrs"] = {k: (v.tolist() if hasattr(v, "tolist") else v)
                                    for k, v in obj.attrs.items() if k not in SKIP}
            if isinstance(obj, h5py.Dataset) and name != "index/checksum":   # a CRC over timings too
                out[name] = _value(obj)
        visit("", f)
        f.visititems(visit)
        inputs = json.loads(f.attrs.get("inputs", "{}"))
        out["@inputs"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("completed", "path")}
                          for k, v in inputs.items()}
    return out


def main() -> int:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    a, b, stages = Path(sys.argv[1]), Path(sys.argv[2]), set(sys.argv[3:])

    def stores(root):
        return sorted(p.relative_to(root) for p in root.rglob("*.h5")
                      if not p.is_symlink() and (not stages or p.parent.name in stages))
    fa, fb = stores(a), stores(b)
    if fa != fb:
        print(f"different stores: only in {a}: {sorted(set(fa) - set(fb))}; only in {b}: {sorted(set(fb) - set(fa))}")
        return 1
    bad = 0
    for rel in fa:
        ca, cb = contents(a / rel), contents(b / rel)
        diff = sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))
        print(f"{rel}: {len(ca)} items, " + ("IDENTICAL" if not diff else "DIFFERS: " + ", ".join(diff[:8])))
        bad += bool(diff)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
