"""``optimize()``: the study-like loop every entry point uses (CLI, sweeps, notebooks).

Each step: the proposer turns what the loop knows into k new values (for TGD: the simulator's
result in words, its textual gradient, and a TGD step: see ``proposers/tgd.py``), the
objective evaluates them in one batch, the best of the step becomes the current candidate,
and one step record is appended to the run record. The loop stops at ``max_steps``, when the
evaluation budget is spent, when ``target_score`` is reached, or after ``patience`` steps
without improving the best score; the reason is recorded. A run directory that already holds
steps is resumed, never repeated.
"""

from __future__ import annotations

import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

from .engine import EngineError, Usage
from .objectives.base import Confirmation, Confirms, Evaluation, HasGoals, HasReferences, Objective, Pareto, WritesOutputs
from .objectives.function import as_objective
from .proposers import LoopState, Proposer, make_proposer
from .pareto import ParetoTracker
from .record import RunConfig, RunRecord, RunSummary, StepRecord
from .run_lock import run_lock
from .spec_models import Budget, plain
from . import two_phase

MAX_CONSECUTIVE_ENGINE_ERRORS = 3


@dataclass
class OptimizationResult:
    best: Evaluation
    start: Evaluation
    steps: list[StepRecord]
    stop_reason: str
    usage: Usage
    evaluations: list[Evaluation] = field(default_factory=list)
    run_dir: Optional[Path] = None
    references: list[tuple[str, Evaluation]] = field(default_factory=list)
    confirmed: Optional[Confirmation] = None
    pareto: Optional[dict] = None  # Pareto mode: axes, reference point, hypervolume, the front's values, the knee
    evaluations_to_goals: Optional[int] = None  # simulations until the first design meeting every goal (objectives with goals)

    def summary(self, outputs: list[str] = ()) -> RunSummary:
        return RunSummary(
            start=self.start, best=self.best, steps=max((s.step for s in self.steps), default=0),
            evaluations=count_simulations(self.evaluations), stop_reason=self.stop_reason, usage=self.usage,
            references=self.references, outputs=list(outputs), confirmed=self.confirmed, pareto=self.pareto,
            evaluations_to_goals=self.evaluations_to_goals,
        )


def count_simulations(evaluations: list[Evaluation]) -> int:
    """Candidates that reached the simulator (invalid proposals cost nothing)."""
    return sum(1 for e in evaluations if e.simulated)


def optimize(
    objective: Objective | Callable,
    start: str,
    *,
    method: str | Proposer = "tgd",
    engine=None,
    optimizer_engine=None,
    max_steps: int = 10,
    n_proposals: int = 4,
    max_evaluations: Optional[int] = None,
    patience: Optional[int] = 3,
    min_improvement: float = 0.0,
    target_score: Optional[float] = None,
    run_dir: Optional[str | Path] = None,
    seed: int = 0,
    callback: Optional[Callable[[StepRecord], None]] = None,
    stop_when: Optional[str] = None,
    plateau_margin: float = 0.5,
    plateau_steps: int = 2,
    **function_options,
) -> OptimizationResult:
    """Optimize ``start`` under ``objective``; lower score is better. Resumes from ``run_dir``.

    ``stop_when="all_goals_met"`` stops as soon as the best candidate meets every goal of the
    objective (a plan's clinical goals; a molecule's ``goals``), besides the budget and patience.
    ``stop_when="two_phase"`` (``two_phase``): reach every goal, then lower the objective's
    tie-break with every goal held, stopping after ``plateau_steps`` steps that lowered it by less
    than ``plateau_margin``.

    ``objective`` is an ``Objective`` or a plain function ``fn(value) -> (score, words)``
    described by ``describe="the goal"`` (and optionally ``validate=``, ``role=``,
    ``batch=True`` for ``fn(values) -> [(score, words), ...]``, ``constraints=``,
    ``neighbor=``): see ``objectives.function``.
    """
    max_steps, n_proposals, max_evaluations, patience, min_improvement, target_score, plateau_margin, plateau_steps = plain(
        (max_steps, n_proposals, max_evaluations, patience, min_improvement, target_score, plateau_margin, plateau_steps))
    Budget.checked({"max_steps": max_steps, "n_proposals": n_proposals, "max_evaluations": max_evaluations, "patience": patience,
                    "min_improvement": min_improvement, "target_score": target_score, "stop_when": stop_when,
                    "plateau_margin": plateau_margin, "plateau_steps": plateau_steps})  # SpecError: a ValueError
    objective = as_objective(objective, **function_options)
    budget = {"max_steps": max_steps, "n_proposals": n_proposals, "max_evaluations": max_evaluations,
              "patience": patience, "min_improvement": min_improvement, "target_score": target_score}
    if stop_when:
        budget["stop_when"] = stop_when  # only when set: records of runs without it keep their budget
    if stop_when == "two_phase":
        budget.update(plateau_margin=plateau_margin, plateau_steps=plateau_steps)
    with run_lock(run_dir) if run_dir is not None else nullcontext():  # one writer per run directory
        return _optimize(objective, start, method, engine, optimizer_engine, budget, run_dir, seed, callback)


def _optimize(objective: Objective, start, method, engine, optimizer_engine, budget: dict, run_dir, seed,
              callback) -> OptimizationResult:
    stop_when, n_proposals, max_evaluations = budget.get("stop_when"), budget["n_proposals"], budget["max_evaluations"]
    min_improvement = budget["min_improvement"]
    if stop_when == "all_goals_met" and not (isinstance(objective, HasGoals)
                                             and objective.goals_met(Evaluation("", None, error="probe")) is not None):
        raise ValueError("stop_when='all_goals_met' needs an objective with goals (a plan case's, or a molecule's goals)")
    if stop_when == "two_phase":
        two_phase.check(objective)
    rank = two_phase.rank(objective) if stop_when == "two_phase" else (lambda ev: (0, ev.score))
    proposer = method if isinstance(method, Proposer) else make_proposer(method, engine, optimizer_engine)
    proposer.check(objective)
    config = RunConfig(objective=objective.fingerprint(), start=start, method=proposer.describe(), seed=seed,
                       budget=budget, spec=objective.spec)
    record = RunRecord.open(run_dir, config) if run_dir else None
    steps = record.steps if record else []  # one list: record.append() extends it

    rng = random.Random(seed)
    usage = Usage()
    if steps:
        state = LoopState(objective, steps[0].candidates[0], steps[-1].current, steps[-1].best, rng, step=steps[-1].step)
        proposer.bind(state)
        for rec in steps:
            state.add(rec.candidates)
            proposer.tell(rec.candidates, rec.failures)
            usage.add(rec.usage)
    else:
        start_eval = objective.evaluate([_normalize_start(objective, start)])[0]
        state = LoopState(objective, start_eval, start_eval, start_eval, rng)
        state.add([start_eval])
        proposer.bind(state)
        proposer.tell([start_eval], [])
        t0 = time.perf_counter()
        if isinstance(objective, HasReferences):
            objective.references()  # approved drugs, reference plans: simulated now, not inside step 1's LLM time
        timings = {"simulate_s": start_eval.seconds, "references_s": time.perf_counter() - t0}
        _emit(record, steps, callback, StepRecord(0, start_eval, start_eval, [start_eval], timings=timings, time=time.time()))

    tracker = ParetoTracker(objective) if isinstance(objective, Pareto) and objective.pareto_axes() else None
    if tracker is not None:  # Pareto mode: the knee of the front is the best, a larger hypervolume an improvement
        state.best = tracker.update(state.evaluations)[0] or state.best
    stop_reason = record.summary.stop_reason if record is not None and record.finished else None
    stale = _stale_steps(steps, min_improvement, tracker)
    engine_errors = 0
    while stop_reason is None:
        stop_reason = _should_stop(state, budget, stale, steps)
        if stop_reason:
            break
        k = n_proposals if max_evaluations is None else min(n_proposals, max_evaluations - count_simulations(state.evaluations))
        state.step += 1
        state.rng.seed(f"{seed}:{state.step}")  # per step, so a resumed run draws what an uninterrupted one would
        t0 = time.perf_counter()
        try:
            proposal = proposer.propose(state, k)
        except Exception as exc:  # noqa: BLE001 - an unreachable LLM or an unreadable reply: recorded, the run goes on
            engine_errors += 1
            step_usage = Usage().plus(getattr(exc, "usage", None))
            if not isinstance(exc, EngineError):
                exc = EngineError(f"proposal failed: {type(exc).__name__}: {str(exc)[:300]}")
            usage.add(step_usage)
            _emit(record, steps, callback, StepRecord(state.step, state.current, state.best, usage=step_usage,
                                                      timings={"llm_s": time.perf_counter() - t0}, error=str(exc), time=time.time()))
            if engine_errors >= MAX_CONSECUTIVE_ENGINE_ERRORS:
                stop_reason = f"engine_error: {exc}"
            continue
        engine_errors = 0
        t1 = time.perf_counter()
        new = objective.evaluate(proposal.values) if proposal.values else []
        new = [replace(e, origin=proposal.origins[e.value]) if e.value in proposal.origins else e for e in new]
        t2 = time.perf_counter()
        state.add(new)
        proposer.tell(new, proposal.failures)
        previous_best = rank(state.best) if state.best.valid else None
        valid = [e for e in new if e.valid]
        if valid:
            state.current = min(valid, key=rank)
            if not state.best.valid or rank(state.current) < rank(state.best):
                state.best = state.current
        improved = state.best.valid and (previous_best is None or rank(state.best) < (previous_best[0], previous_best[1] - min_improvement))
        if tracker is not None:
            previous_hv = tracker.hv
            knee, hv = tracker.update(state.evaluations)
            state.best = knee or state.best
            improved = hv > previous_hv + min_improvement
        stale = 0 if improved else stale + 1
        usage.add(proposal.usage)
        _emit(record, steps, callback, StepRecord(
            state.step, state.current, state.best, new, proposal.loss, proposal.feedback, proposal.failures,
            proposal.replies, proposal.usage, {"llm_s": t1 - t0, "simulate_s": t2 - t1}, time=time.time(),
        ))

    result = OptimizationResult(state.best, state.start, steps, stop_reason, usage, state.evaluations,
                                record.path if record else None)
    if tracker is not None:
        result.pareto = tracker.summary(state.evaluations)
    if isinstance(objective, HasGoals) and objective.goals_met(Evaluation("", None, error="probe")) is not None:
        result.evaluations_to_goals = two_phase.evaluations_to_goals(state.evaluations, objective)
    if record is not None:
        result.references = objective.references() if isinstance(objective, HasReferences) else []
        if isinstance(objective, Confirms):
            result.confirmed = objective.confirm(result)
        outputs = objective.write_outputs(record.path, result) if isinstance(objective, WritesOutputs) else []
        record.finish(result.summary(outputs))
    return result


def _normalize_start(objective: Objective, start: str) -> str:
    """The start's normalized form; an invalid start is kept as text and evaluated as invalid."""
    try:
        return objective.checked(start)
    except ValueError:
        return start


def _emit(record: Optional[RunRecord], steps: list[StepRecord], callback, step: StepRecord) -> None:
    if record is not None:
        record.append(step)
    else:
        steps.append(step)
    if callback:
        callback(step)


def _stale_steps(steps: list[StepRecord], min_improvement: float, tracker: Optional[ParetoTracker] = None) -> int:
    """Steps since the best score (Pareto mode: the hypervolume) last improved (by more than ``min_improvement``)."""
    stale, best = 0, None
    curve = tracker.curve(steps) if tracker is not None else None
    for i, rec in enumerate(steps):
        score = (-curve[i] if curve[i] > 0 else None) if curve is not None else (rec.best.score if rec.best.valid else None)
        if score is not None and (best is None or score < best - min_improvement):
            best, stale = score, 0
        elif rec.step > 0 and not rec.error:  # a step the LLM failed proposed nothing: not a stale step (as live)
            stale += 1
    return stale


def _should_stop(state: LoopState, budget: dict, stale: int, steps: list) -> Optional[str]:
    if budget["target_score"] is not None and state.best.valid and state.best.score <= budget["target_score"]:
        return "target_score"
    if budget.get("stop_when") == "all_goals_met":
        if state.best.valid and isinstance(state.objective, HasGoals) and state.objective.goals_met(state.best):
            return "all_goals_met"
    if budget.get("stop_when") == "two_phase":
        reached, flat = two_phase.plateau(steps, state.objective, budget["plateau_margin"])
        if reached and flat >= budget["plateau_steps"]:
            return "plateau"
    if state.step >= budget["max_steps"]:
        return "max_steps"
    if budget["max_evaluations"] is not None and count_simulations(state.evaluations) >= budget["max_evaluations"]:
        return "max_evaluations"
    if budget["patience"] is not None and stale >= budget["patience"]:
        return "patience"
    return None
