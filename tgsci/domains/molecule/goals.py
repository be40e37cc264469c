"""Goals on a molecule's metrics ("vina<=-9", "qed>=0.6"): parsed, checked and put in words.

They let ``optimize(..., stop_when="all_goals_met")`` stop a molecule run as a plan's clinical
goals stop a plan run, and they are shown to the LLM in the objective and in every loss.
"""

from __future__ import annotations

import re

GOAL_METRICS = ("vina", "qed", "sa", "mol_weight", "logp", "tpsa", "heavy_atoms", "rotatable_bonds", "lipinski_violations")


def parse_goal(goal) -> dict:
    """{"metric", "op", "value"} from a dict or text such as "vina<=-9" / "qed >= 0.6"; ValueError otherwise."""
    if isinstance(goal, str):
        m = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*", goal)
        if not m:
            raise ValueError(f"goal {goal!r}: write metric<=value or metric>=value, e.g. vina<=-9 or qed>=0.6")
        goal = {"metric": m[1], "op": m[2], "value": float(m[3])}
    if not isinstance(goal, dict) or set(goal) != {"metric", "op", "value"} or goal["op"] not in ("<=", ">="):
        raise ValueError(f"goal {goal!r}: needs metric, op (<= or >=) and value")
    if goal["metric"] not in GOAL_METRICS and not str(goal["metric"]).startswith("vina_"):
        raise ValueError(f"goal metric {goal['metric']!r}: choose one of {', '.join(GOAL_METRICS)} or vina_<TARGET>")
    return {"metric": str(goal["metric"]), "op": goal["op"], "value": float(goal["value"])}


def goal_met(goal: dict, metrics: dict) -> bool:
    value = metrics.get(goal["metric"])
    if value is None:
        return False
    return value <= goal["value"] if goal["op"] == "<=" else value >= goal["value"]


def goal_text(goal: dict) -> str:
    """"Vina <= -9 kcal/mol", "QED >= 0.6", "Vina(JAK2) <= -8 kcal/mol"."""
    metric = goal["metric"]
    labels = {"vina": "Vina", "qed": "QED", "sa": "SA score", "mol_weight": "MW", "logp": "logP", "tpsa": "TPSA"}
    label = f"Vina({metric[5:]})" if metric.startswith("vina_") else labels.get(metric, metric)
    unit = " kcal/mol" if metric.startswith("vina") else ""
    return f"{label} {goal['op']} {goal['value']:g}{unit}"
