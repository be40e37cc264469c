"""The plan spec as typed models: the objective's options, and a sweep's [plan] table.

Types and ranges only; the case (built-in or a file), its manifest and its goals are checked by
``PlanDomain.check``, which loads the case before any dose work.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field

from ...spec_models import Numbers, SpecModel

TUNES = (["weights"], ["weights", "dose_levels"])  # what a run may tune: the weights, and the dose levels too


def _tune(value: list[str]) -> list[str]:
    if value not in TUNES:
        raise ValueError("not a tune setting")
    return value


Positive = Field(None, gt=0, description="a positive number")


class PlanSettings(SpecModel):
    """Plan settings that override the case's, and the dose engine's (a sweep's [plan] table)."""

    fast: bool = Field(False, description="true or false (the case's [plan.fast] settings: quick trials)")
    protocol: Optional[str] = Field(None, description='a protocol name (tgsci.presets), e.g. "paper"')
    objectives: Optional[Literal["goals"]] = Field(None, description='"goals" (Pareto mode: one axis per clinical goal)')
    reference_point: Optional[dict[str, float]] = Field(
        None, description='a table of goal = value, e.g. {"Rectum.V70Gy" = 50}')
    machine: Optional[str] = Field(None, min_length=1, description="a machine name")
    gantry_angles: Optional[Numbers] = Field(None, min_length=1, description="a list of angles in degrees")
    couch_angles: Optional[Numbers] = Field(None, min_length=1, description="a list of angles in degrees")
    bixel_width_mm: Optional[float] = Positive
    dose_grid_mm: Optional[float] = Positive
    max_iter: Optional[int] = Field(None, ge=1, description="an integer >= 1")
    memory_gb: Optional[float] = Positive
    judge_grid: Optional[Literal["dose", "ct"]] = Field(None, description='"dose" or "ct"')
    tune: Optional[Annotated[list[str], AfterValidator(_tune)]] = Field(
        None, description='["weights"] or ["weights", "dose_levels"]')
    threads: Optional[int] = Field(None, ge=1, description="an integer >= 1")
    check_memory: Optional[bool] = Field(None, description="true or false")
    use_result_cache: Optional[bool] = Field(None, description="true or false")
    progress: Optional[bool] = Field(None, description="true or false")
    cache_dir: Optional[str] = Field(None, description="a path string")


class PlanOptions(PlanSettings):
    """A plan objective (``kind = "plan"``): a case (a built-in name or your case file) and its settings."""

    kind: Literal["plan"] = Field("plan", description='"plan"')
    case: Optional[str] = Field(None, description="a case name (see targets/cases) or a case file path")


SETTING_KEYS = ("machine", "gantry_angles", "couch_angles", "bixel_width_mm", "dose_grid_mm", "max_iter", "memory_gb",
                "judge_grid", "tune")  # the case's [plan] settings a spec may override
