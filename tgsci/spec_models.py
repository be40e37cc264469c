"""Typed spec models: the shared parts of a run or sweep file (budget, engine, resources, [sweep]).

A domain adds its own (the objective's options, its sweep tables) in its package. A model checks
the types and ranges; a field's ``description`` is its rule ("an integer >= 1"), so an error reads
``budget.max_steps must be an integer >= 0, not -1`` and an editor shows the same words from the
published schema (``docs/spec.schema.json``, written by ``tgsci schema``). The budget and its stop
rule are defined here once, for ``optimize()`` and for sweep files alike.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, create_model



class SpecError(ValueError):
    """A spec names an unknown kind, key, target or case, or a value of the wrong type.

    ``key`` (and ``table``) say where, so a sweep file can point at the line.
    """

    def __init__(self, message: str, key: Optional[str] = None, table: Optional[str] = None):
        super().__init__(message)
        self.key = key
        self.table = table


def plain(value):
    """numpy scalars (np.int64, np.float64, np.bool_) as Python's, inside dicts, lists and tuples: a value a
    notebook computed passes the strict checks and goes into JSON records as the number it is."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def names(value) -> list[str]:
    """A checked ``Names`` value as a list without repeats."""
    return list(dict.fromkeys([value] if isinstance(value, str) else value))


def _tuple_as_list(value):
    return list(value) if isinstance(value, tuple) else value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Names = Annotated[Union[Text, Annotated[list[Text], Field(min_length=1)]], BeforeValidator(_tuple_as_list)]  # "a" or ["a", "b"]
Numbers = Annotated[list[float], BeforeValidator(_tuple_as_list)]
Strings = Annotated[list[str], BeforeValidator(_tuple_as_list)]


class SpecModel(BaseModel):
    """Strict: a TOML true is not an integer, "3" is not a number, NaN and infinity are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @classmethod
    def checked(cls, data: Any, table: Optional[str] = None):
        """The validated model; SpecError names the first wrong key (``key``/``table`` for the line)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise spec_error(exc, cls, data, table) from None


class Budget(SpecModel):
    """How long a run may go and when it stops (``optimize()`` arguments; a sweep file's [budget])."""

    max_steps: int = Field(10, ge=0, description="an integer >= 0")
    n_proposals: int = Field(4, ge=1, description="an integer >= 1")
    max_evaluations: Optional[int] = Field(None, ge=1, description="an integer >= 1 (simulations, the start included)")
    patience: Optional[int] = Field(3, ge=0, description="an integer >= 0 (steps without a better best; 0 = no early stopping)")
    min_improvement: float = Field(0.0, ge=0, description="a number >= 0 (what counts as better)")
    target_score: Optional[float] = Field(None, description="a number (stop once the best score is at or below it)")
    stop_when: Optional[Literal["all_goals_met", "two_phase"]] = Field(
        None, description='"all_goals_met" (stop as soon as the best meets every goal of the objective) or "two_phase" '
                          '(reach every goal, then lower the organ-sparing tie-break with every goal held, stop on a plateau)')
    plateau_margin: float = Field(0.5, ge=0, description="a number >= 0 (two_phase: how much the tie-break must fall to count, "
                                                         "in its unit: Gy of mean organ dose for plans)")
    plateau_steps: int = Field(2, ge=1, description="an integer >= 1 (two_phase: steps without that fall before the run stops)")

    def as_dict(self) -> dict:
        """The budget as a sweep run receives it (patience 0 means none)."""
        data = self.model_dump()
        data["patience"] = data["patience"] or None
        if data["stop_when"] != "two_phase":  # the plateau settings belong to that rule (records of other runs lack them)
            del data["plateau_margin"], data["plateau_steps"]
        return data


class EngineTable(SpecModel):
    """[engine]: the LLM (see ``tgsci.config``); keys come from the environment, never from here."""

    model: Optional[str] = Field(None, description='a litellm model string, e.g. "openai/gpt-4o"')
    optimizer_model: Optional[str] = Field(None, description="a litellm model string for TGD updates")
    feedback_model: Optional[str] = Field(None, description="a litellm model string for feedback")
    api_base: Optional[str] = Field(None, description="a URL string")
    temperature: Optional[float] = Field(None, ge=0, description="a number >= 0")
    max_tokens: Optional[int] = Field(None, ge=1, description="an integer >= 1")
    timeout: Optional[float] = Field(None, gt=0, description="a number of seconds > 0")
    top_p: Optional[float] = Field(None, gt=0, le=1, description="a number in (0, 1]")
    max_retries: Optional[int] = Field(None, ge=0, description="an integer >= 0")
    requests_per_minute: Optional[float] = Field(None, gt=0, description="a number > 0 (the provider's limit per minute)")
    tokens_per_minute: Optional[float] = Field(None, gt=0, description="a number > 0 (the provider's limit per minute)")


class Resources(SpecModel):
    """[resources] of a sweep: workers, retries, caches (a domain may add its own, e.g. docking workers)."""

    n_workers: Optional[int] = Field(None, ge=1, description="an integer >= 1")
    llm_concurrency: Optional[int] = Field(None, ge=1, description="an integer >= 1")
    max_attempts: int = Field(3, ge=1, description="an integer >= 1")
    cache_dir: Optional[str] = Field(None, description="a path string")
    run_lock_timeout_s: float = Field(3600.0, ge=0, description="a number >= 0")


class SweepTable(SpecModel):
    """[sweep]: what varies. A domain's model adds its subjects key ("targets", "cases") and its own keys."""

    name: str = Field("", description="a string")
    kind: Optional[str] = Field(None, description="a registered kind (tgsci.domains); none: the default kind")
    starts: Optional[Names] = Field(None, description="a non-empty string or list of non-empty strings")
    seeds: Union[Annotated[int, Field(ge=1)], Annotated[list[int], Field(min_length=1)]] = Field(
        [0], description="a count (e.g. 3) or a non-empty list of integers")
    method: Optional[Names] = Field(None, description="a method name or a list of them")
    methods: Optional[Names] = Field(None, description="a method name or a list of them")
    protocol: Optional[str] = Field(None, description="a protocol name (tgsci.presets)")


def sweep_model(domain) -> type[SweepTable]:
    """[sweep] of ``domain``'s kind: the shared keys, its subjects key and its own ``sweep_keys``."""
    fields: dict[str, Any] = {
        "kind": (Literal[domain.kind], Field(domain.kind, description=f'"{domain.kind}"')),
        domain.subjects_key: (Names, Field(description=domain.subjects_help or f'"all" or a {domain.subject} name or a list of them')),
    }
    fields.update({key: (Optional[str], Field(None, description="a path string")) for key in domain.sweep_keys})
    return create_model(f"{domain.kind.title()}Sweep", __base__=SweepTable, **fields)


def file_model(domain) -> type[SpecModel]:
    """A whole sweep (or ``tgsci run``) file of ``domain``'s kind: what ``docs/spec.schema.json`` publishes."""
    fields: dict[str, Any] = {
        "sweep": (sweep_model(domain), ...),
        "budget": (Budget, Field(default_factory=Budget)),
        "engine": (EngineTable, Field(default_factory=EngineTable)),
        "resources": (domain.resources_model, Field(default_factory=domain.resources_model)),
        "objective": (objective_table(domain), Field(default_factory=dict)),
    }
    for table in domain.sweep_tables:
        fields[table] = (domain.table_models.get(table, dict[str, Any]), Field(default_factory=dict))
    return create_model(f"{domain.kind.title()}SpecFile", __base__=SpecModel, **fields)


def objective_table(domain):
    """A sweep file's [objective]: the domain's options without kind and subject (the sweep sets both)
    and without what a sweep file sets in another table (``Domain.sweep_moved``)."""
    if domain.options_model is None:
        return dict[str, Any]
    fields = {name: (f.annotation, f) for name, f in domain.options_model.model_fields.items()
              if name not in ("kind", domain.subject, *domain.sweep_moved)}
    return create_model(f"{domain.kind.title()}ObjectiveTable", __base__=SpecModel, __doc__=domain.options_model.__doc__, **fields)


def json_schema() -> dict:
    """The JSON Schema of a spec file, one branch per registered kind (``docs/spec.schema.json``)."""
    from pydantic.json_schema import models_json_schema

    from .domains import domains

    models = [file_model(d) for d in sorted(domains(), key=lambda d: d.kind) if d.options_model is not None]  # import order aside
    refs, schema = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "tgsci spec file (run or sweep)",
            "description": "A [sweep] table and its kind's tables; see examples/ and the README.",
            "anyOf": [refs[(m, "validation")] for m in models], "$defs": schema["$defs"]}


def schema_text() -> str:
    """``json_schema()`` as the text of ``docs/spec.schema.json``."""
    import json

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


# ----------------------------------------------------------------------------- errors
def spec_error(exc: ValidationError, model: type[BaseModel], data: Any, table: Optional[str] = None) -> SpecError:
    """One SpecError from pydantic's first error: the key path (``goals[0].op``), the field's rule
    when the error is the field's own, else pydantic's words; ``key``/``table`` (model fields only)
    say where the line is."""
    errors = exc.errors()
    # a union's branches each fail at the same place: the deepest error is the one that says what is wrong
    error = max((e for e in errors if e["loc"][:1] == errors[0]["loc"][:1]), key=lambda e: len(e["loc"]))
    at = _locate(model, data, error["loc"])
    shown = ".".join(filter(None, [table, at.path])).replace(".[", "[")
    names = [table] if table else []
    names += at.fields
    key, where = (names[-1], ".".join(names[:-1]) or None) if names else (None, None)
    if error["type"] == "extra_forbidden":
        allowed = list(at.model.model_fields) if at.model is not None else []
        unknown = at.path.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(unknown, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if at.in_list:  # a key inside a list item: the line is the list's
            return SpecError(f"unknown key {shown!r}{hint}; valid: {', '.join(allowed)}", key, where)
        return SpecError(f"unknown key {shown!r}{hint}; valid: {', '.join(allowed)}", unknown, ".".join(names) or None)
    rule = at.field.description if at.field is not None and at.own else None
    if error["type"] == "missing":
        return SpecError(f"missing key {shown}" + (f" ({rule})" if rule else ""), key, where)
    if rule:
        return SpecError(f"{shown} must be {rule}, not {at.value!r}", key, where)
    words = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"][0].lower() + error["msg"][1:]
    return SpecError(f"{shown}: {words}, not {at.value!r}", key, where)


@dataclass
class _Place:
    path: str = ""  # every step: fields, table keys, [list indices]
    fields: list = dc_field(default_factory=list)  # the model fields along it, up to a list item (the line is the list's)
    in_list: bool = False
    field: Any = None  # the last model field passed
    own: bool = True  # the location ends at that field (not inside its value)
    model: Any = None  # the model holding the last step (for an unknown key: its valid keys)
    value: Any = None


def _locate(model, data, loc) -> _Place:
    """Follow pydantic's ``loc`` through the data and the models; union tags (``str``, ``Goal``) are
    not steps of the data: a model's name among them says which model the value is read as."""
    place, models, annotation, value = _Place(model=model, value=data), model, None, data
    for part in loc:
        fields = getattr(models, "model_fields", None) or {}
        holder = models
        if isinstance(value, dict) and isinstance(part, str) and part in value or part in fields:
            place.path += f".{part}" if place.path else str(part)
            if part in fields:
                if not place.in_list:
                    place.fields.append(part)
                place.field, place.own = fields[part], True
                annotation = fields[part].annotation
                models = _model_of(annotation)
            else:
                place.own, models = False, None
            value = value.get(part) if isinstance(value, dict) else None
        elif isinstance(part, int) and isinstance(value, list) and part < len(value):
            place.path += f"[{part}]"
            place.own, place.in_list, value = False, True, value[part]
            models = next(iter(_models_in(annotation)), None) if not isinstance(value, (str, int, float)) else None
        else:  # a union tag
            models = next((m for m in _models_in(annotation) if m.__name__ == part), models)
            continue
        place.model = holder
    place.value = value
    return place


def _model_of(annotation) -> Optional[type[BaseModel]]:
    """The model class of ``Model`` or ``Optional[Model]``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _models_in(annotation) -> list[type[BaseModel]]:
    """Every model class anywhere in ``annotation`` (list[Union[str, Goal]] -> [Goal])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


__all__ = ["SpecError", "SpecModel", "Budget", "EngineTable", "Resources", "SweepTable", "Names", "names", "plain", "Numbers", "Strings", "Text",
           "sweep_model", "file_model", "objective_table", "json_schema", "schema_text", "spec_error"]
