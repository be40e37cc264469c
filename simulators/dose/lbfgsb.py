"""k L-BFGS-B solvers advanced in lock step by one thread, on scipy's own L-BFGS-B core.

``scipy.optimize.minimize(method="L-BFGS-B")`` is a loop around ``_lbfgsb.setulb`` (reverse
communication: the core returns whenever it wants f and g at its x). Driving k cores from one
loop lets one matrix pass evaluate every solver's x together, with no solver threads, locks or
per-call wrappers (those cost ~2.6 ms per evaluation for k = 4 on TG119). The loop below is the
one of scipy 1.17's ``_minimize_lbfgsb`` (defaults maxcor 10, maxls 20, maxfun 15000;
``tol`` sets ftol and gtol as ``minimize`` does), so each solver takes the same iterates as
``minimize`` bit for bit (a test compares them; scipy is pinned).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from scipy.optimize import _lbfgsb
from scipy.optimize._lbfgsb_py import status_messages, task_messages

FG, NEW_X, CONVERGED, STOP = 3, 1, 4, 5
MAXCOR, MAXLS, MAXFUN = 10, 20, 15000


@dataclass
class FluenceResult:
    x: np.ndarray
    fun: float
    nit: int
    nfev: int
    message: str
    success: bool
    error: Optional[str]
    seconds: float


class _Solver:
    """One L-BFGS-B core on [0, inf)^n: its work arrays, x, f, g and counters."""

    def __init__(self, x0: np.ndarray, tol: float, maxiter: int):
        n = x0.size
        self.x = np.clip(np.array(x0, dtype=np.float64), 0.0, None)
        self.f = 0.0
        self.g = np.zeros(n)
        self.low, self.up = np.zeros(n), np.zeros(n)
        self.nbd = np.ones(n, dtype=np.int32)  # lower bound only
        self.factr, self.pgtol = tol / np.finfo(float).eps, tol
        self.wa = np.zeros(2 * MAXCOR * n + 5 * n + 11 * MAXCOR * MAXCOR + 8 * MAXCOR)
        self.iwa = np.zeros(3 * n, dtype=np.int32)
        self.task, self.ln_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
        self.lsave, self.isave, self.dsave = np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29)
        self.maxiter = maxiter
        self.nit = self.nfev = 0
        self.last_x: Optional[np.ndarray] = None  # memo of the last evaluated point, as scipy keeps
        self.t0 = time.perf_counter()

    def advance(self) -> bool:
        """Run the core until it asks for f and g at ``self.x`` (True) or has stopped (False)."""
        while True:
            _lbfgsb.setulb(MAXCOR, self.x, self.low, self.up, self.nbd, self.f, self.g, self.factr, self.pgtol,
                           self.wa, self.iwa, self.task, self.lsave, self.isave, self.dsave, MAXLS, self.ln_task)
            if self.task[0] == FG:
                if self.last_x is not None and np.array_equal(self.x, self.last_x):
                    continue  # same point: scipy's memo answers without an evaluation
                return True
            if self.task[0] != NEW_X:
                return False
            self.nit += 1
            if self.nit >= self.maxiter:
                self.task[0], self.task[1] = STOP, 504
            elif self.nfev > MAXFUN:
                self.task[0], self.task[1] = STOP, 502

    def tell(self, f: float, g: np.ndarray) -> None:
        self.f, self.g = float(f), np.array(g, dtype=np.float64)
        self.last_x = self.x.copy()
        self.nfev += 1

    def result(self, error: Optional[str] = None) -> FluenceResult:
        converged = self.task[0] == CONVERGED
        ok = error is None and bool(np.all(np.isfinite(self.x))) and np.isfinite(self.f)
        if error is None and not ok:
            error = "inner optimization produced a non-finite fluence or objective"
        return FluenceResult(
            x=self.x.copy(), fun=self.f, nit=self.nit, nfev=self.nfev,
            message=f"{status_messages.get(int(self.task[0]), '?')}: {task_messages.get(int(self.task[1]), '?')}",
            success=bool(converged) and error is None, error=error, seconds=time.perf_counter() - self.t0,
        )


def minimize_block(
    evaluate: Callable[[np.ndarray, list[int]], tuple[np.ndarray, np.ndarray]],
    X0: np.ndarray, tol: float, maxiter: int,
) -> list[FluenceResult]:
    """Minimize k objectives from the columns of ``X0`` (n x k) with x >= 0.

    ``evaluate(X, ids)`` returns f (m,) and gradients (n, m) for the solvers ``ids`` at the
    columns of X (n x m). A non-finite f fails only its own solver; an exception fails every
    solver of that block. Results are in column order."""
    solvers = [_Solver(X0[:, j], tol, maxiter) for j in range(X0.shape[1])]
    results: list[Optional[FluenceResult]] = [None] * len(solvers)
    active = []
    for j, s in enumerate(solvers):
        if s.advance():
            active.append(j)
        else:
            results[j] = s.result()
    while active:
        try:
            f, G = evaluate(np.stack([solvers[j].x for j in active], axis=1), list(active))
        except Exception as exc:  # every solver of the block gets the error
            for j in active:
                results[j] = solvers[j].result(f"inner optimization failed: {type(exc).__name__}: {exc}")
            break
        still = []
        for i, j in enumerate(active):
            s = solvers[j]
            if not np.isfinite(f[i]):
                results[j] = s.result("inner optimization failed: FloatingPointError: objective is not finite")
                continue
            s.tell(f[i], G[:, i])
            if s.advance():
                still.append(j)
            else:
                results[j] = s.result()
        active = still
    return results  # type: ignore[return-value]
