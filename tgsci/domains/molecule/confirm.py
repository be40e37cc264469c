"""Confirm a molecule run's best candidates and the approved drugs with several Vina seeds.

Vina at exhaustiveness 8 with one seed can miss the pocket (one of DOCKSTRING's steroid drugs
scores -6.84 with one seed and -8.2 with three others; that pose sits at the box edge). The loop
ranks on its one seed; this re-docks the top candidates and the drugs with seeds ``s, s+1, ...``
(``s`` the run's own seed, so the first is a cache hit) and keeps, per target, the best score of
the seeds (the pose Vina should have found), the single seed's score and the spread. A molecule
whose seeds disagree by more than ``DISAGREE_KCAL`` is flagged. Every docking goes through the
docking cache, so a resumed or repeated confirmation docks nothing twice.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Optional

from ...objectives.base import Confirmation, Evaluation

if TYPE_CHECKING:
    from .objective import MoleculeObjective

DISAGREE_KCAL = 1.0


def confirm_molecules(objective: "MoleculeObjective", result) -> Optional[Confirmation]:
    """The run's ``objective.confirm_top`` best distinct molecules (Pareto mode: its front) and its references, docked with
    ``objective.confirm_seeds`` seeds; None when confirmation is off or nothing was docked."""
    n = objective.confirm_seeds
    if n <= 1 or objective.aggregation == "qed":
        return None
    ranked: dict[str, Evaluation] = {}
    for ev in sorted((e for e in result.evaluations if e.valid), key=lambda e: e.score):
        ranked.setdefault(ev.value, ev)
    top = list(ranked.values())[: objective.confirm_top]
    if objective.pareto_axes():  # Pareto mode: the whole front (in the loop's score order), so the reported front is confirmed
        from ...pareto import front

        members = {e.value for e in front(result.evaluations, objective.pareto_axes())}
        top = [e for e in ranked.values() if e.value in members]
    refs = [(name, ev) for name, ev in result.references if ev.valid]
    if not top:
        return None
    seeds = [objective.docking.seed + k for k in range(n)]
    values = list(dict.fromkeys([e.value for e in top] + [e.value for _, e in refs]))
    scores = {t: _dock_seeds(objective, t, seeds, values) for t in objective.weights}
    confirmed = {e.value: _confirmed(objective, e, values.index(e.value), scores, seeds) for e in top + [e for _, e in refs]}
    disagree = [v for v, ev in confirmed.items() if ev.metrics.get("vina_spread", 0.0) > DISAGREE_KCAL]
    method = f"Vina, best of {n} seeds ({', '.join(map(str, seeds))}); spread > {DISAGREE_KCAL:g} kcal/mol flagged"
    return Confirmation(method, n, [confirmed[e.value] for e in top], [(name, confirmed[e.value]) for name, e in refs], disagree)


def _dock_seeds(objective: "MoleculeObjective", target: str, seeds: list[int], values: list[str]) -> dict[int, list]:
    """{seed: [Measurement per value]}: the run's own seed from its simulator (cached), the others fresh."""
    from simulators.docking import DockingSimulator

    out = {seeds[0]: objective._simulator(target).evaluate(values)}
    for seed in seeds[1:]:
        with DockingSimulator(objective.targets[target], replace(objective.docking, seed=seed), objective.cache_dir,
                              objective.n_workers) as sim:
            out[seed] = sim.evaluate(values)
    return out


def _confirmed(objective: "MoleculeObjective", single: Evaluation, index: int, scores: dict, seeds: list[int]) -> Evaluation:
    """``single`` with, per target, the best Vina of the seeds; the single seed's Vina as
    ``vina_single``, each seed's as ``vina_seed<k>``, the spread as ``vina_spread`` (primary target)."""
    metrics = {**single.metrics, "score_single": single.score}
    for target, by_seed in scores.items():
        per_seed = [m.metrics["vina"] if m.valid else None for m in (by_seed[seed][index] for seed in seeds)]
        found = [v for v in per_seed if v is not None]
        if not found:
            continue
        metrics[f"vina_{target}"] = min(found)
        if target == objective.primary:
            metrics.update(vina_single=single.metrics.get("vina"), vina=min(found), vina_spread=round(max(found) - min(found), 3),
                           **{f"vina_seed{k + 1}": v for k, v in enumerate(per_seed)})
    return replace(single, score=objective._score(metrics), metrics=metrics, cached=True, seconds=0.0)
