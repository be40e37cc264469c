"""``optimize()``: the study-like loop every entry point uses (CLI, sweeps, notebooks).

Each step: the proposer turns the current candidate (and the history) into k new values,
the objective evaluates them in one batch, the best of the step becomes the current
candidate, and one JSON line is appended to ``run_dir/trajectory.jsonl``. The loop stops at
``max_steps``, when the evaluation budget is spent, when ``target_score`` is reached, or after
``patience`` steps without improving the best score; the reason is recorded. A run directory
that already holds steps is resumed, never repeated.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from . import __version__
from .engine import Engine, EngineError, Usage
from .objectives.base import Evaluation, Objective
from .optim import History
from .proposers import GeneticProposer, LoopState, Proposer, RandomProposer, TGDProposer
from .rundir import RunDirError, append_jsonl, read_json, read_jsonl, write_json_atomic

MAX_CONSECUTIVE_ENGINE_ERRORS = 3


@dataclass
class OptimizationResult:
    best: Evaluation
    start: Evaluation
    steps: list[dict]
    stop_reason: str
    usage: Usage
    evaluations: list[Evaluation] = field(default_factory=list)
    run_dir: Optional[Path] = None

    def summary(self) -> dict:
        return {
            "best": self.best.to_dict(),
            "start": self.start.to_dict(),
            "steps": max((s["step"] for s in self.steps), default=0),
            "evaluations": count_simulations(self.evaluations),
            "stop_reason": self.stop_reason,
            "usage": self.usage.to_dict(),
        }


def count_simulations(evaluations: list[Evaluation]) -> int:
    """Candidates that reached the simulator (invalid proposals cost nothing)."""
    return sum(1 for e in evaluations if e.simulated)


def make_proposer(method: str, engine=None, optimizer_engine=None, **options) -> Proposer:
    if method == "tgd":
        engine = engine or Engine()
        return TGDProposer(engine, optimizer_engine, **options)
    if method == "random":
        return RandomProposer(**options)
    if method in ("graph-ga", "ga"):
        return GeneticProposer(**options)
    if method == "tpe":
        from .proposers.tpe import TPEProposer  # optuna: imported only when asked for

        return TPEProposer(**options)
    raise ValueError(f"unknown method {method!r}; choose one of: tgd, random, graph-ga, tpe")


def optimize(
    objective: Objective,
    start: str,
    *,
    method: str | Proposer = "tgd",
    engine: Optional[Engine] = None,
    optimizer_engine: Optional[Engine] = None,
    max_steps: int = 10,
    n_proposals: int = 4,
    max_evaluations: Optional[int] = None,
    patience: Optional[int] = 3,
    min_improvement: float = 0.0,
    target_score: Optional[float] = None,
    run_dir: Optional[str | Path] = None,
    seed: int = 0,
    history_best: int = 3,
    history_recent: int = 3,
    callback: Optional[Callable[[dict], None]] = None,
) -> OptimizationResult:
    """Optimize ``start`` under ``objective``; lower score is better. Resumes from ``run_dir``."""
    if max_steps < 0 or n_proposals < 1:
        raise ValueError("max_steps must be >= 0 and n_proposals >= 1")
    proposer = method if isinstance(method, Proposer) else make_proposer(method, engine, optimizer_engine)
    # Distinct engines the proposer calls (feedback and optimizer may be one object): per-step usage.
    engines = list({id(e): e for e in (getattr(proposer, "feedback_engine", None), getattr(proposer, "optimizer_engine", None)) if e}.values())
    run_path = Path(run_dir) if run_dir else None
    config = {
        "tgsci_version": __version__,
        "objective": objective.fingerprint(),
        "start": start,
        "method": proposer.describe(),
        "seed": seed,
        "budget": {
            "max_steps": max_steps,
            "n_proposals": n_proposals,
            "max_evaluations": max_evaluations,
            "patience": patience,
            "min_improvement": min_improvement,
            "target_score": target_score,
        },
        "history": {"best": history_best, "recent": history_recent},
    }
    records, finished = _open_run_dir(run_path, config) if run_path else ([], None)

    rng = random.Random(seed)
    history = History(history_best, history_recent, objective.direction)
    usage = Usage()
    evaluations: list[Evaluation] = []
    if records:
        state = _restore(records, objective, history, rng, evaluations, usage)
    else:
        start_eval = objective.evaluate([_normalize_start(objective, start)])[0]
        evaluations.append(start_eval)
        history.add(start_eval.value, start_eval.score, objective.summarize(start_eval))
        state = LoopState(objective, start_eval, start_eval, start_eval, evaluations, history, rng, step=0)
        record = _record(0, state, [start_eval], None, "", "", [], [], Usage(), {"simulate_s": start_eval.seconds})
        _emit(run_path, record, records, callback)

    stop_reason = finished
    stale = _stale_steps(records, min_improvement)
    engine_errors = 0
    while stop_reason is None:
        stop_reason = _should_stop(state, max_steps, max_evaluations, patience, stale, target_score)
        if stop_reason:
            break
        k = n_proposals if max_evaluations is None else min(n_proposals, max_evaluations - count_simulations(evaluations))
        state.step += 1
        # Seeded per step, so a resumed run draws exactly what an uninterrupted one would.
        state.rng.seed(f"{seed}:{state.step}")
        t0 = time.perf_counter()
        before = [e.usage.copy() for e in engines]
        try:
            proposal = proposer.propose(state, k)
            engine_error = None
            engine_errors = 0
        except EngineError as exc:
            engine_errors += 1
            proposal, engine_error = None, str(exc)
        step_usage = Usage()
        for e, b in zip(engines, before):
            step_usage.add(e.usage.since(b))
        t1 = time.perf_counter()
        if proposal is None:
            record = _record(state.step, state, [], None, "", "", [], [], step_usage, {"llm_s": t1 - t0}, error=engine_error)
            _emit(run_path, record, records, callback)
            usage.add(step_usage)
            if engine_errors >= MAX_CONSECUTIVE_ENGINE_ERRORS:
                stop_reason = f"engine_error: {engine_error}"
            continue
        new_evals = objective.evaluate(proposal.values) if proposal.values else []
        t2 = time.perf_counter()
        previous_best = state.best.score
        for ev in new_evals:
            evaluations.append(ev)
            history.add(ev.value, ev.score, objective.summarize(ev))
        for failure in proposal.failures:
            history.add(failure.text, None, objective.invalid_text(failure.reason))
        valid = [e for e in new_evals if e.valid]
        if valid:
            state.current = min(valid, key=lambda e: e.score)
            if not state.best.valid or state.current.score < state.best.score:
                state.best = state.current
        improved = state.best.valid and (previous_best is None or state.best.score < previous_best - min_improvement)
        stale = 0 if improved else stale + 1
        usage.add(step_usage)
        record = _record(
            state.step, state, new_evals, proposal, proposal.loss, proposal.feedback,
            proposal.failures, proposal.replies, step_usage,
            {"llm_s": t1 - t0, "simulate_s": t2 - t1},
        )
        _emit(run_path, record, records, callback)

    result = OptimizationResult(state.best, state.start, records, stop_reason, usage, evaluations, run_path)
    if run_path:
        write_json_atomic(run_path / "summary.json", {**result.summary(), "finished": True})
        outputs = objective.write_outputs(run_path, result)
        if outputs:
            write_json_atomic(run_path / "summary.json", {**result.summary(), "finished": True, "outputs": outputs})
    return result


def _normalize_start(objective: Objective, start: str) -> str:
    """The start's normalized form; an invalid start is kept as text and evaluated as invalid."""
    try:
        return objective.validate(start)
    except ValueError:
        return start


def _record(step, state, evals, proposal, loss, feedback, failures, replies, usage, timings, error=None) -> dict:
    return {
        "step": step,
        "current": state.current.to_dict(),
        "best": state.best.to_dict(),
        "candidates": [e.to_dict() for e in evals],
        "loss": loss,
        "feedback": feedback,
        "failures": [{"text": f.text, "reason": f.reason} for f in failures],
        "replies": replies,
        "usage": usage.to_dict(),
        "timings": timings,
        "error": error,
        "time": time.time(),
    }


def _emit(run_path, record, records, callback) -> None:
    if run_path:
        append_jsonl(run_path / "trajectory.jsonl", record)
    records.append(record)
    if callback:
        callback(record)


def _open_run_dir(run_path: Path, config: dict) -> tuple[list[dict], Optional[str]]:
    """Create or reopen a run directory; refuse one that belongs to another objective/start/method.

    Returns the complete step records and, for a finished run asked again with the same
    budget, its stop reason (nothing to do). A larger budget extends a finished run.
    """
    try:
        run_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create run directory {run_path}: {exc}") from None
    config_path = run_path / "config.json"
    if config_path.exists():
        old = read_json(config_path)
        for key in ("objective", "start"):
            if old.get(key) != config.get(key):
                raise RunDirError(
                    f"{run_path} holds a run with a different {key} ({old.get(key)!r}); "
                    f"use another --run-dir or delete it"
                )
        if old.get("method", {}).get("method") != config["method"]["method"]:
            raise RunDirError(f"{run_path} holds a {old['method']['method']} run, not {config['method']['method']}")
        records = list(read_jsonl(run_path / "trajectory.jsonl"))
        summary_path = run_path / "summary.json"
        finished = None
        if records and summary_path.exists() and old.get("budget") == config.get("budget"):
            summary = read_json(summary_path)
            finished = summary.get("stop_reason") if summary.get("finished") else None
        write_json_atomic(config_path, config)
        return records, finished
    write_json_atomic(config_path, config)
    return [], None


def _restore(records, objective, history, rng, evaluations, usage) -> LoopState:
    start = Evaluation.from_dict(records[0]["candidates"][0])
    for rec in records:
        usage.add(Usage(**rec.get("usage", {})))
        for c in rec["candidates"]:
            ev = Evaluation.from_dict(c)
            evaluations.append(ev)
            history.add(ev.value, ev.score, objective.summarize(ev))
        for f in rec.get("failures", []):
            history.add(f["text"], None, objective.invalid_text(f["reason"]))
    last = records[-1]
    return LoopState(
        objective, start, Evaluation.from_dict(last["current"]), Evaluation.from_dict(last["best"]),
        evaluations, history, rng, step=last["step"],
    )


def _stale_steps(records: list[dict], min_improvement: float) -> int:
    stale, best = 0, None
    for rec in records:
        score = rec["best"].get("score")
        if score is not None and (best is None or score < best - min_improvement):
            best, stale = score, 0
        elif rec["step"] > 0:
            stale += 1
    return stale


def _should_stop(state, max_steps, max_evaluations, patience, stale, target_score) -> Optional[str]:
    if target_score is not None and state.best.valid and state.best.score <= target_score:
        return "target_score"
    if state.step >= max_steps:
        return "max_steps"
    if max_evaluations is not None and count_simulations(state.evaluations) >= max_evaluations:
        return "max_evaluations"
    if patience is not None and stale >= patience:
        return "patience"
    return None
