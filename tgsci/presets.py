"""Study protocols as presets: the objective options and the budget of a published setup, by name.

``paper``: the TextGrad paper's radiotherapy protocol (Nature 2025): every objective weight
starts at 100, the case's reference plans go into the TGD prompt, a run stops as soon as every
clinical goal is met or after 10 iterations; its baseline, Bayesian optimization with Optuna, has
50 trials with every weight searched in [100, 400] (here: TPE, 50 evaluations, the start included).

    spec = {"kind": "plan", "case": "prostate", "protocol": "paper"}
    optimize(build_objective(spec), start, method="tgd", **protocol_budget("paper", "tgd"))
"""

from __future__ import annotations

PROTOCOLS: dict[str, dict] = {
    "paper": {
        "start_weight": 100.0,
        "search_range": (100.0, 400.0),
        "budget": {"max_steps": 10, "patience": None, "stop_when": "all_goals_met"},
        "budget_by_method": {"tpe": {"max_steps": 50, "n_proposals": 1, "max_evaluations": 50, "patience": None, "stop_when": None}},
    },
}


def protocol(name: str) -> dict:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocol_budget(name: str, method: str) -> dict:
    """The optimize() keyword arguments of a protocol for a method."""
    p = protocol(name)
    return {**p["budget"], **p.get("budget_by_method", {}).get(method, {})}
