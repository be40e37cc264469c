"""Keep OpenBLAS single-threaded while the inner optimizer runs.

scipy's L-BFGS-B calls BLAS on tiny vectors twice per iteration; with OpenBLAS' default of
one thread per core, its worker threads spin after every call and, on a busy 2-core machine,
take the core our sparse products need. Measured on TG119 (fast settings, other jobs running):
k = 1 took 1.25 s with the default and 0.57 s with one BLAS thread; k = 4, 3.9 s vs 1.1 s.

A minimal stand-in for threadpoolctl (not a dependency): find the OpenBLAS libraries loaded in
this process (numpy's and scipy's wheels each bundle one) and call their set/get functions.
The previous thread counts are restored on exit.
"""

from __future__ import annotations

import ctypes
import threading
from contextlib import contextmanager

_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads", "scipy_openblas_set_num_threads64_")
_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads", "scipy_openblas_get_num_threads64_")
_lock = threading.Lock()
_depth = 0
_saved: list = []


def _openblas_libs() -> list:
    libs = []
    try:
        with open("/proc/self/maps") as handle:
            paths = {line.split()[-1] for line in handle if "openblas" in line.lower() and "/" in line}
    except OSError:
        return libs
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
        getter = next((getattr(lib, g) for g in _GETTERS if hasattr(lib, g)), None)
        if setter is not None and getter is not None:
            getter.restype = ctypes.c_int
            libs.append((setter, getter))
    return libs


@contextmanager
def single_threaded_blas():
    """Set every loaded OpenBLAS to 1 thread inside the block (re-entrant, thread-safe)."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = []
            for setter, getter in _openblas_libs():
                try:
                    _saved.append((setter, int(getter())))
                    setter(ctypes.c_int(1))
                except Exception:  # noqa: BLE001 - best effort, never fail the computation
                    pass
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for setter, n in _saved:
                    try:
                        setter(ctypes.c_int(n))
                    except Exception:  # noqa: BLE001
                        pass
                _saved = []
