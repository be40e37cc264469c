"""The Objective interface: the one place that knows both a simulator and the words for it.

An objective validates proposals, evaluates candidates in batches (through a simulator),
turns each result into a scalar score (lower is better, always) and into text for the LLM.
A plain function becomes one with ``objectives.function.FunctionObjective``; the domain
objectives (molecule, plan) are the same interface with more attached.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Optional, Protocol, runtime_checkable

from .. import prompts
from ..formats import ValueFormat, validated


class InvalidCandidate(ValueError):
    """A proposal that cannot be evaluated; the message is the reason shown to the LLM."""


@dataclass
class Evaluation:
    """One candidate's result. ``score`` is None when the candidate is invalid or its simulation failed.

    ``text``: the simulator's own words for the result, when it gives some (function objectives).
    ``origin``: empty for the method's own proposals (the LLM's, for TGD); set for anything else.
    """

    value: str
    score: Optional[float]
    metrics: dict = field(default_factory=dict)
    error: Optional[str] = None
    simulated: bool = True  # False when rejected before reaching the simulator (costs no budget)
    cached: bool = False
    seconds: float = 0.0
    text: str = ""
    origin: str = ""  # who proposed it, when not the run's method itself (e.g. "fallback: mutation of ...")

    @property
    def valid(self) -> bool:
        return self.score is not None and math.isfinite(self.score) and self.error is None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Evaluation":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Confirmation:
    """The best candidates and the references simulated again with independent repeats (Vina
    seeds): the loop ranks on one simulation, the reports and the drug comparison read these.

    ``candidates`` keep the loop's order (its single-run best first); each confirmed evaluation
    holds the confirmed numbers in ``metrics`` beside the single run's (see the objective)."""

    method: str  # in words, e.g. "Vina, best of 3 seeds (974528263, 974528264, 974528265)"
    repeats: int
    candidates: list[Evaluation] = field(default_factory=list)
    references: list[tuple[str, Evaluation]] = field(default_factory=list)
    disagree: list[str] = field(default_factory=list)  # values whose repeats disagree beyond the objective's threshold

    @property
    def best(self) -> Optional[Evaluation]:
        valid = [c for c in self.candidates if c.valid]
        return min(valid, key=lambda c: c.score) if valid else None

    @property
    def stays_best(self) -> Optional[bool]:
        """Whether the single run's best is still the best after confirmation (None: nothing confirmed)."""
        best = self.best
        return None if best is None else best.value == self.candidates[0].value

    def to_dict(self) -> dict:
        return {"method": self.method, "repeats": self.repeats, "candidates": [c.to_dict() for c in self.candidates],
                "references": [{"name": n, **e.to_dict()} for n, e in self.references], "disagree": list(self.disagree)}

    @classmethod
    def from_dict(cls, data: dict) -> "Confirmation":
        return cls(str(data.get("method", "")), int(data.get("repeats") or 0),
                   [Evaluation.from_dict(c) for c in data.get("candidates") or []],
                   [(r["name"], Evaluation.from_dict(r)) for r in data.get("references") or []],
                   [str(v) for v in data.get("disagree") or []])


@runtime_checkable
class Confirms(Protocol):
    """Capability: re-simulate a finished run's best candidates and references with repeats."""

    def confirm(self, result) -> Optional[Confirmation]: ...


@runtime_checkable
class HasGoals(Protocol):
    """Capability: goals a design can meet (a plan case's clinical goals, a molecule's ``goals``), for
    ``stop_when = "all_goals_met"``. ``goals_met`` is None when this objective has none set."""

    def goals_met(self, evaluation: Evaluation) -> Optional[bool]: ...


@runtime_checkable
class Spares(Protocol):
    """Capability: the tie-break among designs that meet every goal (lower is better; a plan's mean
    organ dose in Gy), for ``stop_when = "two_phase"``: once every goal is met, the run goes on while
    it falls by at least ``plateau_margin`` and stops after ``plateau_steps`` steps without that."""

    def sparing(self, evaluation: Evaluation) -> Optional[float]: ...


@runtime_checkable
class HasReferences(Protocol):
    """Capability: named designs to compare against (approved drugs, reference plans), evaluated like
    any candidate; the run records them in its summary so reports never simulate them again."""

    def references(self) -> list[tuple[str, Evaluation]]: ...


@runtime_checkable
class ShowsReferences(Protocol):
    """Capability: (name, value, one line of numbers) of designs the TGD prompt shows as worked
    examples (the paper's reference plans); without it the prompt has none."""

    def prompt_references(self) -> list[tuple[str, str, str]]: ...


@runtime_checkable
class WritesOutputs(Protocol):
    """Capability: domain files beside the run record (tables, structures, plots, DICOM); their names."""

    def write_outputs(self, run_dir, result) -> list[str]: ...


@runtime_checkable
class Mutates(Protocol):
    """Capability: a random neighbor of a value (random search, Graph GA's mutation, TGD's fallback
    when the LLM proposes nothing new). None when no neighbor was found this time."""

    def neighbor(self, value: str, rng: random.Random) -> Optional[str]: ...


@runtime_checkable
class Crosses(Protocol):
    """Capability: a child of two values (Graph GA's crossover; without it Graph GA only mutates)."""

    def crossover(self, a: str, b: str, rng: random.Random) -> Optional[str]: ...


@runtime_checkable
class Pareto(Protocol):
    """Capability: an objective in Pareto mode (``tgsci.pareto``): the metrics laid out as a front
    instead of one weighted score, the reference point of the hypervolume, and the front shown to it."""

    def pareto_axes(self) -> list: ...

    def reference_point(self) -> list[float]: ...

    def see_front(self, members: list[Evaluation]) -> None: ...


@runtime_checkable
class SearchSpace(Protocol):
    """Capability: named numeric bounds and the value <-> numbers mapping (Optuna's TPE and NSGA-II)."""

    def search_space(self) -> dict[str, tuple[float, float]]: ...

    def linear_params(self) -> set[str]: ...

    def to_params(self, value: str) -> dict[str, float]: ...

    def from_params(self, params: dict[str, float]) -> str: ...


@runtime_checkable
class ExportsDose(Protocol):
    """Capability: a design written out as DICOM RTDOSE on the patient's CT grid (plans), with its DVH table."""

    def export_dose(self, value: str, path, dvh_csv=None) -> list[str]: ...


@runtime_checkable
class CountsSimulations(Protocol):
    """Capability: how many simulations this process really ran (cache hits excluded), for sweep records."""

    @property
    def simulations(self) -> int: ...


class Objective:
    """Base class: a subclass implements ``describe``, ``validate``, ``evaluate`` (a batch) and ``verbalize``
    (``summarize`` for the history line); everything else is a capability above, checked with ``isinstance``."""

    kind: str = "objective"
    role_description: str = "candidate"
    what: str = "candidate"  # used in "invalid <what>: reason"
    direction: str = "lower score is better"
    value_format: ValueFormat = ValueFormat()
    spec: Optional[dict] = None  # the spec it was built from (tgsci.domains.build_objective); None if built in Python

    def describe(self) -> str:
        """The goal in one or two sentences, for the LLM."""
        raise NotImplementedError

    def describe_short(self) -> str:
        """A title for tables and figures."""
        return self.describe()

    def constraints(self) -> list[str]:
        return []

    def validate(self, text: str) -> str:
        """Normalized candidate, or raise InvalidCandidate(reason)."""
        raise NotImplementedError

    def checked(self, raw) -> str:
        """``validate``, once per text: the answer for a text seen before is reused (proposers check a
        proposal; the batch evaluation, the history and a repeated reply are not checked again). A
        rejection is raised again as the same exception type and reason. An objective's settings are
        fixed once it is built: build a new one to change them."""
        seen = self.__dict__.setdefault("_checked", {})  # text -> normalized value, or (exception type, reason)
        key = raw if isinstance(raw, str) else None
        if key is not None and key in seen:
            answer = seen[key]
            if isinstance(answer, tuple):
                raise answer[0](answer[1])
            return answer
        try:
            value = validated(self.validate, raw)
        except ValueError as exc:
            if key is not None:
                seen[key] = (type(exc) if type(exc).__init__ is ValueError.__init__ else ValueError, str(exc))
            raise
        if key is not None:
            seen[key] = value
        seen[value] = value
        return value

    def evaluate(self, values: list[str]) -> list[Evaluation]:
        """Batch evaluation; never raises for a bad candidate (it gets ``error`` instead)."""
        raise NotImplementedError

    def screen(self, values: list[str]) -> tuple[list[Optional[Evaluation]], list[tuple[int, str]]]:
        """Validate a batch before simulating it: (one slot per value, invalid ones already filled
        with their reason and no simulation cost; [(index, normalized value)] left to simulate)."""
        out: list[Optional[Evaluation]] = [None] * len(values)
        ok: list[tuple[int, str]] = []
        for i, raw in enumerate(values):
            try:
                ok.append((i, self.checked(raw)))
            except ValueError as exc:
                out[i] = Evaluation(str(raw), None, error=str(exc), simulated=False)
        return out, ok

    def summarize(self, evaluation: Evaluation) -> str:
        """One line of numbers for the history in the TGD prompt."""
        if not evaluation.valid:
            return self.invalid_text(evaluation.error or "evaluation failed")
        return f"score {evaluation.score:.3f}"

    def verbalize(self, evaluation: Evaluation, start: Optional[Evaluation], best: Optional[Evaluation],
                  brief: bool = False) -> str:
        """The loss text: every number with its direction and context. ``brief``: the same numbers
        in fewer words (for the embedded model, whose prompt processing is the cost of a step)."""
        return self.summarize(evaluation)

    def invalid_text(self, reason: str) -> str:
        return prompts.INVALID_CANDIDATE.format(what=self.what, reason=reason)

    def fingerprint(self) -> dict:
        """What identifies this objective in a run directory (a resumed run must match it)."""
        return {"kind": self.kind}

    def close(self) -> None:
        """Release simulator processes and files."""

