"""numba's ``njit`` with its disk cache where numba finds a place to write it.

The kernels of ``proposal_*.py`` and ``grabcut_plus.py`` are compiled on first use and cached on
disk (next to the module, else in the user's cache folder), so that later processes skip the
compilation (about 20 s of one core for all of them). Where neither is writable (a read-only
install run by a user without a writable home), ``njit(cache=True)`` raises at import; these
kernels are then compiled without the disk cache, in every process, rather than failing.
"""
from __future__ import annotations

from numba import njit as _njit


def njit(function=None, **options):
    """``numba.njit(cache=True, **options)``, or without ``cache`` where numba cannot cache.
    Used as ``@njit`` or ``@njit(nogil=True)``."""
    def compile_(f):
        try:
            return _njit(cache=True, **options)(f)
        except RuntimeError as error:                    # "cannot cache function ...: no locator available"
            if "cannot cache" not in str(error):
                raise
            return _njit(**options)(f)
    return compile_(function) if function is not None else compile_
