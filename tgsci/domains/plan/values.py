"""The plan variable: what a candidate is, how it is parsed and written, and where baselines search.

``[plan] tune = ["weights"]`` (default): a candidate is the weight vector ``{"BODY": 100, "PTV": 1000}``.
``tune = ["weights", "dose_levels"]``: one JSON object with the weights and the dose levels (and,
for DVH objectives with a ``volume_range``, volumes) of the objectives the case lets move::

    {"dose_gy": {"Rectum_V70": 70}, "volume_pct": {"Rectum_V70": 20}, "weights": {"BODY": 100, ...}}

Every number is checked against its bounds (weights in [0, weight_max], levels in the objective's
``dose_range``/``volume_range``); a value outside gets an ``InvalidCandidate`` with the reason,
which goes back to the proposer. Baselines (TPE, random search, Graph GA's crossover) search
weights on a log scale and levels on a linear one.
"""

from __future__ import annotations

import json
import math
import random
from typing import Optional

from simulators.dose.cases import CaseSpec
from simulators.dose.weights import canonical_weights, join_plan, round_sig, split_plan

from ...formats import ValueFormat
from ...objectives.base import InvalidCandidate

SEARCH_FACTOR = 30.0  # TPE/random search range: start weight / 30 ... start weight * 30
NEIGHBOR_SIGMA = 0.5  # log-normal perturbation of the random baseline (factor e^0.5 ~ 1.65 per sigma)
LEVEL_SIGMA = 0.15  # the random baseline moves a level by N(0, 0.15 x its range)
LEVELS = (("dose_gy", "dose level", "Gy"), ("volume_pct", "volume", "%"))


class PlanValues:
    """Parse, write and search the candidates of one case (weights, and its tunable levels)."""

    def __init__(self, case: CaseSpec, start_weights: dict[str, float], search_range: Optional[tuple] = None):
        self.case = case
        self.names = case.objective_names
        self.weight_max = float(case.weight_max)
        doses, volumes = case.tunable()
        # per table: objective name -> (low, high, case value)
        self.levels = {
            "dose_gy": {o.name: (*o.dose_range, o.dose_gy) for o in doses},
            "volume_pct": {o.name: (*o.volume_range, o.volume_pct) for o in volumes},
        }
        self.tunes_levels = any(self.levels.values())
        self.start = self.with_case_levels(start_weights)
        self.search_range = search_range

    def canonical(self, weights: dict, doses: Optional[dict] = None, volumes: Optional[dict] = None) -> str:
        return canonical_weights(join_plan(weights, doses if self.tunes_levels else None, volumes if self.tunes_levels else None))

    def with_case_levels(self, plan: dict) -> str:
        """A weight vector or a plan (a reference plan) as a candidate: levels it does not give at the
        case's own values."""
        weights, doses, volumes = split_plan(plan)
        return self.canonical(weights, {**{n: v for n, (_, _, v) in self.levels["dose_gy"].items()}, **doses},
                              {**{n: v for n, (_, _, v) in self.levels["volume_pct"].items()}, **volumes})

    # ------------------------------------------------------------------ parsing
    def parse(self, text: str) -> str:
        """The canonical candidate in ``text``, or InvalidCandidate saying what is wrong."""
        if not isinstance(text, str):
            raise InvalidCandidate("the plan must be JSON text")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, ValueError, RecursionError) as exc:
            raise InvalidCandidate(f"not valid JSON ({exc.msg if hasattr(exc, 'msg') else type(exc).__name__}); "
                                   f"write a JSON object such as {self.start}") from None
        if isinstance(data, str):  # a JSON object quoted as a string
            try:
                data = json.loads(data)
            except (json.JSONDecodeError, ValueError, RecursionError):
                pass
        if not isinstance(data, dict):
            raise InvalidCandidate(f"expected a JSON object such as {self.start}, got {type(data).__name__}")
        nested = isinstance(data.get("weights"), dict)
        if not self.tunes_levels:
            if nested:
                raise InvalidCandidate(f"this case tunes weights only: write the weight object itself, such as {self.start}")
            return self.canonical(self._weights(data))
        if not nested:
            raise InvalidCandidate(f"this case tunes weights and dose levels: write one object with \"weights\" and "
                                   f"{self._level_keys()}, such as {self.start}")
        unknown = sorted(set(data) - {"weights", *self._tables()})
        if unknown:
            raise InvalidCandidate(f"unknown key(s) {', '.join(unknown)}; the object holds weights and {self._level_keys()}")
        weights = self._weights(data["weights"])
        tables = {table: self._levels(table, data.get(table)) for table in self._tables()}
        return self.canonical(weights, tables.get("dose_gy"), tables.get("volume_pct"))

    def _tables(self) -> list[str]:
        return [t for t, _, _ in LEVELS if self.levels[t]]

    def _level_keys(self) -> str:
        return " and ".join(f'"{t}"' for t in self._tables())

    def _weights(self, data: dict) -> dict[str, float]:
        names, top = self.names, self.weight_max
        unknown = sorted(map(str, set(data) - set(names)))
        if unknown:
            raise InvalidCandidate(f"unknown objective name(s) {', '.join(unknown)}; valid names: {', '.join(names)}")
        missing = [n for n in names if n not in data]
        if missing:
            raise InvalidCandidate(f"missing weight(s) for {', '.join(missing)}; every one of {', '.join(names)} needs a weight")
        weights = {}
        for n in names:
            v = _number(data[n], f"weight {n}")
            if v < 0:
                raise InvalidCandidate(f"weight {n} is negative ({v:g}); weights must be >= 0")
            if v > top:
                raise InvalidCandidate(f"weight {n} = {v:g} is above the upper bound {top:g}")
            weights[n] = v
        if not any(round_sig(v) for v in weights.values()):
            raise InvalidCandidate("all weights are zero; at least one objective needs a positive weight")
        return weights

    def _levels(self, table: str, data) -> dict[str, float]:
        bounds = self.levels[table]
        what, unit = next((w, u) for t, w, u in LEVELS if t == table)
        if not isinstance(data, dict):
            raise InvalidCandidate(f'"{table}" must be an object giving the {what} of {", ".join(bounds)}')
        unknown = sorted(map(str, set(data) - set(bounds)))
        if unknown:
            raise InvalidCandidate(f'"{table}" names {", ".join(unknown)}, whose {what} the case does not tune; '
                                   f'tunable: {", ".join(bounds)}')
        missing = [n for n in bounds if n not in data]
        if missing:
            raise InvalidCandidate(f'"{table}" misses the {what} of {", ".join(missing)}')
        out = {}
        for n, (low, high, _) in bounds.items():
            v = _number(data[n], f"{what} of {n}")
            if not low <= v <= high:
                raise InvalidCandidate(f"{what} of {n} = {v:g} {unit} is outside its range [{low:g}, {high:g}] {unit}")
            out[n] = v
        return out

    # ------------------------------------------------------------------ the prompt's format
    def value_format(self) -> ValueFormat:
        """Schema for API models; for the embedded model a grammar of the compact object, keys in
        order and plain decimals (llama.cpp's grammar from the schema lets it spend half its tokens
        on newlines and indentation)."""
        weights_schema = {
            "type": "object",
            "properties": {n: {"type": "number", "minimum": 0, "maximum": self.weight_max} for n in self.names},
            "required": list(self.names), "additionalProperties": False,
        }
        weights_rule = '"{" ' + ' ", " '.join(f'"\\"{n}\\": " weight' for n in self.names) + ' "}"'
        weight_number = 'weight ::= ("0" | [1-9] [0-9]{0,4}) ("." [0-9] [0-9]?)?\n'
        placeholder = "{" + ", ".join(f'"{n}": <weight>' for n in self.names) + "}"
        n_numbers = len(self.names)
        if not self.tunes_levels:
            return ValueFormat(
                schema=weights_schema, example=self.start,
                hint=f"Each value is one JSON object that gives every objective name a non-negative weight, for example {self.start}.",
                placeholder=placeholder, short_hint="", grammar=f"item ::= {weights_rule}\n{weight_number}", quoted=False,
                max_tokens_per_item=16 + 12 * n_numbers,
            )
        properties, parts, holders, rules = {}, [], [], []
        for table in sorted(["weights", *self._tables()]):  # the canonical form's key order
            if table == "weights":
                properties[table] = weights_schema
                parts.append(f'"\\"weights\\": " {weights_rule}')
                holders.append(f'"weights": {placeholder}')
                continue
            bounds = self.levels[table]
            properties[table] = {
                "type": "object", "required": list(bounds), "additionalProperties": False,
                "properties": {n: {"type": "number", "minimum": lo, "maximum": hi} for n, (lo, hi, _) in bounds.items()},
            }
            names = []
            for n, (lo, hi, _) in bounds.items():
                names.append(f"{table[:4]}{len(rules)}")
                rules.append(f"{names[-1]} ::= {_range_rule(lo, hi)}")
            parts.append(f'"\\"{table}\\": {{" ' + ' ", " '.join(f'"\\"{n}\\": " {r}' for n, r in zip(bounds, names)) + ' "}"')
            holders.append(f'"{table}": {{' + ", ".join(f'"{n}": <{lo:g}-{hi:g}>' for n, (lo, hi, _) in bounds.items()) + "}")
            n_numbers += len(bounds)
        ranges = "; ".join(f"{n} {what} {lo:g}-{hi:g} {unit}" for t, what, unit in LEVELS
                           for n, (lo, hi, _) in self.levels[t].items())
        return ValueFormat(
            schema={"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False},
            example=self.start,
            hint=("Each value is one JSON object with every objective's non-negative weight under \"weights\" and the "
                  f"tunable levels under {self._level_keys()}, each within its range ({ranges}); for example {self.start}."),
            placeholder="{" + ", ".join(holders) + "}", short_hint=f"Ranges: {ranges}.",
            grammar="item ::= \"{\" " + ' ", " '.join(parts) + ' "}"\n' + weight_number + "\n".join(rules) + "\n",
            quoted=False, max_tokens_per_item=24 + 12 * n_numbers,
        )

    # ------------------------------------------------------------------ baselines
    def to_params(self, value: str) -> dict[str, float]:
        """A candidate as flat numbers: weights by objective name, levels as ``dose_gy.<name>``/``volume_pct.<name>``."""
        weights, doses, volumes = split_plan(json.loads(value))
        out = {k: float(v) for k, v in weights.items()}
        for table, levels in (("dose_gy", doses), ("volume_pct", volumes)):
            out.update({f"{table}.{k}": float(v) for k, v in levels.items()})
        return out

    def from_params(self, params: dict[str, float]) -> str:
        """The canonical candidate of flat numbers (``to_params``' inverse), bounds checked."""
        weights = {n: params[n] for n in self.names}
        levels = {t: {n: params[f"{t}.{n}"] for n in self.levels[t]} for t in ("dose_gy", "volume_pct")}
        if not self.tunes_levels:
            return self.parse(json.dumps(weights))
        return self.parse(json.dumps({"weights": weights, **{t: v for t, v in levels.items() if v}}))

    def search_space(self, start_weights: dict[str, float]) -> dict[str, tuple[float, float]]:
        """(low, high) per parameter: weights from the protocol's range, else start / 30 ... start x 30
        within (0, weight_max] (log scale); levels within their ranges (``linear_params``)."""
        if self.search_range is not None:
            low, high = self.search_range
            space = {n: (float(low), float(high)) for n in self.names}
        else:
            top = max(start_weights.values()) or 1.0
            space = {}
            for n in self.names:
                w = start_weights[n] if start_weights[n] > 0 else top / 1000.0
                space[n] = (float(max(w / SEARCH_FACTOR, self.weight_max * 1e-9)), float(min(w * SEARCH_FACTOR, self.weight_max)))
        for table in ("dose_gy", "volume_pct"):
            space.update({f"{table}.{n}": (float(lo), float(hi)) for n, (lo, hi, _) in self.levels[table].items()})
        return space

    def linear_params(self) -> set[str]:
        """The parameters searched on a linear scale (dose levels and volumes)."""
        return {f"{t}.{n}" for t in ("dose_gy", "volume_pct") for n in self.levels[t]}

    def neighbor(self, value: str, rng: random.Random, space: dict) -> str:
        """Each weight times exp(N(0, 0.5)), each level plus N(0, 0.15 x range), kept inside the space."""
        p = self.to_params(value)
        linear = self.linear_params()
        out = {}
        for n, (low, high) in space.items():
            if n in linear:
                out[n] = min(max(p[n] + rng.gauss(0.0, LEVEL_SIGMA * (high - low)), low), high)
            else:
                base = p[n] if p[n] > 0 else low
                out[n] = min(max(base * math.exp(rng.gauss(0.0, NEIGHBOR_SIGMA)), low), high)
        return self.from_params(out)

    def crossover(self, a: str, b: str, rng: random.Random, space: dict) -> str:
        """Per parameter, a random point between the parents (weights on the log scale)."""
        pa, pb = self.to_params(a), self.to_params(b)
        linear = self.linear_params()
        out = {}
        for n, (low, _) in space.items():
            t = rng.random()
            if n in linear:
                out[n] = pa[n] + t * (pb[n] - pa[n])
            else:
                la, lb = math.log(max(pa[n], low)), math.log(max(pb[n], low))
                out[n] = math.exp(la + t * (lb - la))
        return self.from_params(out)


def _range_rule(low: float, high: float, most: int = 200) -> str:
    """GBNF alternatives for plain decimals within [low, high]: each whole number from ceil(low) to
    floor(high) - 1 with an optional tenth, then floor(high) itself (the embedded model cannot
    write a level outside its range; a few edge values are left out, never a wrong one added)."""
    first, last = math.ceil(low), math.floor(high)
    if last < first or last - first > most:  # no whole number inside, or too many to list
        return " | ".join(f'"{v:g}"' for v in sorted({low, high}))
    alts = [f'"{i}" ("." [0-9])?' for i in range(first, last)] + [f'"{last}"']
    return "(" + " | ".join(f"({a})" for a in alts) + ")"


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidCandidate(f"{what} must be a number, got {json.dumps(v)[:40]}")
    try:
        v = float(v)
    except OverflowError:
        raise InvalidCandidate(f"{what} is too large to be a number") from None
    if not math.isfinite(v):
        raise InvalidCandidate(f"{what} is not finite ({v})")
    return v
