"""Typed spec models: the shared parts of a run or sweep file (budget, engine, resources, [sweep]).

A domain adds its own (the objective's options, its sweep tables) in its package. A model checks
the types and ranges; a field's ``description`` is its rule ("an integer >= 1"), so an error reads
``budget.max_steps must be an integer >= 0, not -1`` and an editor shows the same words from the
published schema (``docs/spec.schema.json``, written by ``tgsci schema``). The budget and its stop
rule are defined here once, for ``optimize()`` and for sweep files alike.
"""

from __future__ import annotations

import difflib
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


STOP_RULES = (None, "all_goals_met")


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
    stop_when: Optional[Literal["all_goals_met"]] = Field(
        None, description='"all_goals_met" (stop as soon as the best meets every goal of the objective)')

    def as_dict(self) -> dict:
        """The budget as a sweep run receives it (patience 0 means none)."""
        data = self.model_dump()
        data["patience"] = data["patience"] or None
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
        domain.subjects_key: (Names, Field(description=f'"all" or a {domain.subject} name or a list of them')),
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
    """A sweep file's [objective]: the domain's options without kind and subject (the sweep sets both)."""
    if domain.options_model is None:
        return dict[str, Any]
    fields = {name: (f.annotation, f) for name, f in domain.options_model.model_fields.items()
              if name not in ("kind", domain.subject)}
    return create_model(f"{domain.kind.title()}ObjectiveTable", __base__=SpecModel, __doc__=domain.options_model.__doc__, **fields)


def json_schema() -> dict:
    """The JSON Schema of a spec file, one branch per registered kind (``docs/spec.schema.json``)."""
    from pydantic.json_schema import models_json_schema

    from .domains import domains

    models = [file_model(d) for d in domains() if d.options_model is not None]
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
    """One SpecError from pydantic's first error, in the words of the field's rule."""
    error = exc.errors()[0]
    names, field, current, value = _walk(model, data, error["loc"])
    path = ".".join([table, *names] if table and names else names) if names else (table or "")
    where = ".".join(filter(None, [table, *names[:-1]])) or None
    key = names[-1] if names else None
    if error["type"] == "extra_forbidden":
        unknown = str(error["loc"][len(names)])
        allowed = list(current.model_fields) if current is not None else []
        close = difflib.get_close_matches(unknown, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        name = f"{path}.{unknown}" if path else unknown
        return SpecError(f"unknown key {name!r}{hint}; valid: {', '.join(allowed)}", unknown, ".".join(filter(None, [table, *names])) or None)
    if error["type"] == "missing":
        return SpecError(f"missing key {path}" + (f" ({field.description})" if field is not None and field.description else ""), key, where)
    if error["type"] == "value_error" and not (field is not None and field.description):
        return SpecError(str(error["ctx"]["error"]), key, where)
    rule = field.description if field is not None and field.description else error["msg"][0].lower() + error["msg"][1:]
    return SpecError(f"{path} must be {rule}, not {value!r}", key, where)


def _walk(model, data, loc) -> tuple[list[str], Any, Any, Any]:
    """The field names along ``loc`` (dropping union tags and list indices), the last field, the
    model that holds it, and the value there."""
    names, field, current, value = [], None, model, data
    for part in loc:
        fields = getattr(current, "model_fields", None) if current is not None else None
        if not isinstance(part, str) or not fields or part not in fields:
            break
        names.append(part)
        field = fields[part]
        value = value.get(part) if isinstance(value, dict) else None
        current = _model_of(field.annotation)
    return names, field, current, value


def _model_of(annotation) -> Optional[type[BaseModel]]:
    """The model class inside ``Optional[Model]`` or ``Model``, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


__all__ = ["SpecError", "SpecModel", "Budget", "EngineTable", "Resources", "SweepTable", "STOP_RULES", "Names", "names", "Numbers", "Strings", "Text",
           "sweep_model", "file_model", "objective_table", "json_schema", "schema_text", "spec_error"]
