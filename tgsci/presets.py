"""Study protocols as presets: the objective options, starts and budget of a published setup, by kind and name.

Plans, ``paper``: the TextGrad paper's radiotherapy protocol (Nature 2025): every objective weight
starts at 100, the case's reference plans go into the TGD prompt, a run stops as soon as every
clinical goal is met or after 10 iterations; its baseline, Bayesian optimization with Optuna, has
50 trials with every weight searched in [100, 400] (here: TPE, 50 evaluations, the start included).

Molecules, ``paper``: the paper's molecule study (Vina + QED on DOCKSTRING targets, compared with
approved drugs) from three small fragment starts (benzene, pyridine, phenol: the paper started from
benzene-like fragments). The budget is tgsci's, stated here because the paper's exact one could not be
checked offline: at most 20 steps of 3 proposals (61 dockings with the start), stopping early
after 5 steps without a better molecule; every method gets the same 61 dockings. The best
molecules and the drugs are confirmed with 3 Vina seeds.

    spec = {"kind": "plan", "case": "prostate", "protocol": "paper"}
    optimize(build_objective(spec), start, method="tgd", **protocol_budget("paper", "tgd", "plan"))
"""

from __future__ import annotations

PROTOCOLS: dict[str, dict[str, dict]] = {
    "plan": {
        "paper": {
            "start_weight": 100.0,
            "search_range": (100.0, 400.0),
            "budget": {"max_steps": 10, "patience": None, "stop_when": "all_goals_met"},
            "budget_by_method": {m: {"max_steps": 50, "n_proposals": 1, "max_evaluations": 50, "patience": None, "stop_when": None}
                                 for m in ("tpe", "nsga2")},
        },
    },
    "molecule": {
        "paper": {
            "starts": ["c1ccccc1", "c1ccncc1", "Oc1ccccc1"],
            "objective": {"aggregation": "dockstring", "compare_references": True, "confirm_seeds": 3},
            "budget": {"max_steps": 20, "n_proposals": 3, "max_evaluations": 61, "patience": 5, "stop_when": None},
        },
    },
}


def protocol(name: str, kind: str = "plan") -> dict:
    """The preset ``name`` of ``kind``; ValueError lists the names that exist for that kind."""
    known = PROTOCOLS.get(kind, {})
    if name not in known:
        raise ValueError(f"unknown protocol {name!r} for kind {kind!r}; choose one of: {', '.join(known) or '(none)'}")
    return known[name]


def protocol_budget(name: str, method: str, kind: str = "plan") -> dict:
    """The optimize() keyword arguments of a protocol for a method."""
    p = protocol(name, kind)
    return {**p["budget"], **p.get("budget_by_method", {}).get(method, {})}
