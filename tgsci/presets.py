"""Study protocols as presets: the objective options, starts and budget of a published setup, by kind
and name. Each domain declares its own (``Domain.protocols``; the TextGrad paper's for plans and for
molecules are ``paper``, described where they are defined)::

    spec = {"kind": "plan", "case": "prostate", "protocol": "paper"}
    optimize(build_objective(spec), start, method="tgd", **protocol_budget("paper", "tgd", "plan"))
"""

from __future__ import annotations


def protocol(name: str, kind: str) -> dict:
    """The preset ``name`` of ``kind``; ValueError lists the names that exist for that kind."""
    from .domains import get_domain

    known = get_domain(kind).protocols
    if name not in known:
        raise ValueError(f"unknown protocol {name!r} for kind {kind!r}; choose one of: {', '.join(known) or '(none)'}")
    return known[name]


def protocol_budget(name: str, method: str, kind: str) -> dict:
    """The optimize() keyword arguments of a protocol for a method."""
    p = protocol(name, kind)
    budget = {**p["budget"], **p.get("budget_by_method", {}).get(method, {})}
    if budget.get("stop_when") != "two_phase":  # the plateau settings belong to that rule only
        budget = {k: v for k, v in budget.items() if k not in ("plateau_margin", "plateau_steps")}
    return budget
