"""Your own simulator in a few lines: a plain function becomes an Objective.

As Optuna takes a plain function, ``optimize`` takes one::

    def spring(text):                       # one value at a time
        p = json.loads(text)
        ...simulate...
        return score, f"overshoot {o:.1f}% (goal <= 5%), settling {t:.2f} s (goal <= 2 s)"

    optimize(spring, '{"k": 4, "c": 0.8}', describe="settle within 2 s with <= 5% overshoot",
             validate=my_validator, max_steps=6)

``fn`` returns ``(score, words)`` or ``(score, words, metrics)``: the score (lower is better;
None or NaN marks a failed simulation) and the result in words, which is what the LLM reads.
``batch=True``: ``fn(values) -> [(score, words), ...]`` for simulators that run batches.
``validate(text) -> normalized text`` raises ValueError with a reason the LLM will see.
A function that raises fails that candidate (recorded with the error), never the run.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Iterable, Optional

from ..formats import ValueFormat
from .base import Evaluation, InvalidCandidate, Objective

SUMMARY_CHARS = 240  # the history line of one candidate in the TGD prompt


class FunctionObjective(Objective):
    kind = "function"

    def __init__(
        self,
        fn: Callable,
        describe: str,
        *,
        validate: Optional[Callable[[str], str]] = None,
        role: str = "candidate value",
        batch: bool = False,
        constraints: Iterable[str] = (),
        value_format: Optional[ValueFormat] = None,
        neighbor: Optional[Callable[[str, random.Random], Optional[str]]] = None,
        name: Optional[str] = None,
    ):
        if not callable(fn):
            raise TypeError("optimize() needs an Objective or a function fn(value) -> (score, words)")
        if not describe or not str(describe).strip():
            raise ValueError('a function objective needs describe="the goal, in words the LLM reads"')
        self.fn = fn
        self.goal = str(describe).strip()
        self._validate = validate
        self.role_description = role
        self.what = role
        self.batch = batch
        self._constraints = list(constraints)
        if value_format is not None:
            self.value_format = value_format
        if neighbor is not None:  # the Mutates capability (random search, Graph GA) only when given
            self.neighbor = neighbor
        self.name = name or getattr(fn, "__qualname__", type(fn).__name__)

    def describe(self) -> str:
        return self.goal

    def constraints(self) -> list[str]:
        return list(self._constraints)

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "function": self.name, "goal": self.goal, "batch": self.batch}

    def validate(self, text: str) -> str:
        text = str(text).strip()
        if self._validate is None:
            if not text:
                raise InvalidCandidate("empty value")
            return text
        try:
            return str(self._validate(text))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidCandidate(str(exc) or type(exc).__name__) from None

    def evaluate(self, values: list[str]) -> list[Evaluation]:
        out, ok = self.screen(values)
        if ok:
            for (i, value), result in zip(ok, self._call([v for _, v in ok])):
                out[i] = _evaluation(value, result)
        return out  # type: ignore[return-value]

    def _call(self, values: list[str]) -> list:
        """Results (or the exception each candidate failed with), one per value."""
        if self.batch:
            try:
                results = list(self.fn(values))
            except Exception as exc:  # noqa: BLE001 - a simulator failure fails its candidates, not the run
                return [exc] * len(values)
            if len(results) != len(values):
                return [ValueError(f"the function returned {len(results)} results for {len(values)} values")] * len(values)
            return results
        out = []
        for v in values:
            try:
                out.append(self.fn(v))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def summarize(self, ev: Evaluation) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
        text = f"score {ev.score:.4g}" + (f": {ev.text}" if ev.text else "")
        return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3] + "..."

    def verbalize(self, ev: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation], brief: bool = False) -> str:
        if not ev.valid:
            return self.invalid_text(ev.error or "evaluation failed")
        context = [f"{label} {other.score:.4g}" for label, other in (("start", start), ("best so far", best))
                   if other is not None and other.valid and other.value != ev.value]
        line = f"score {ev.score:.4g} (lower is better" + (f"; {'; '.join(context)}" if context else "") + ")"
        return f"{ev.text}\n{line}" if ev.text else line


def _evaluation(value: str, result) -> Evaluation:
    """An Evaluation from what the function returned (or raised) for ``value``."""
    if isinstance(result, BaseException):
        return Evaluation(value, None, error=f"{type(result).__name__}: {result}")
    if not isinstance(result, (tuple, list)) or len(result) not in (2, 3):
        return Evaluation(value, None, error=f"the function must return (score, words) or (score, words, metrics), got {result!r:.120}")
    score, words = result[0], "" if result[1] is None else str(result[1])
    metrics = dict(result[2]) if len(result) == 3 and result[2] else {}
    try:
        score = None if score is None else float(score)
    except (TypeError, ValueError):
        return Evaluation(value, None, metrics, error=f"score {score!r} is not a number", text=words)
    if score is None or not math.isfinite(score):
        return Evaluation(value, None, metrics, error=words or "the simulation gave no score", text=words)
    return Evaluation(value, score, metrics, text=words)


def as_objective(objective, **options) -> Objective:
    """``objective`` itself when it is an Objective (no options allowed), else a FunctionObjective."""
    if isinstance(objective, Objective):
        if options:
            raise TypeError(f"{', '.join(sorted(options))}: only for a plain function, not for an Objective")
        return objective
    if "describe" not in options:
        raise TypeError('optimize(fn, start, describe="the goal", ...) needs describe= for a plain function')
    return FunctionObjective(objective, **options)
