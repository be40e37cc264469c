"""Dose-volume simulator on pyRadPlan: weight vectors -> inner fluence optimization -> DVH metrics.

- ``cases``: TOML treatment-case manifests (``targets/cases``) -> ``CaseSpec``
- ``phantoms``: TG119 from pyRadPlan, synthetic phantoms rasterized from analytic shapes
- ``matrix``: build the dose influence matrix once per case + settings, cache it on disk
- ``optimizer``: our batched L-BFGS-B fluence optimizer (pyRadPlan's objective functions)
- ``metrics``: DVH metrics on voxel doses (Dx, Vx, Dmean, Dmax, HI, Paddick CI)
- ``engine``: ``DoseEngine.evaluate(weight_vectors) -> list[PlanResult]``
- ``simulator``: ``DoseSimulator``: the engine behind a result cache (memory + SQLite)
- ``weights``: the one canonical form of a weight vector
- ``reference``: pyRadPlan's own ``fluence_optimization`` for the same weights (for checks)

All DVH numbers are on the dose grid; see ``engine`` for the difference to the CT grid.
No LLM or text code here.
"""

from .cases import CaseSpec, GoalSpec, ObjectiveSpec, PlanSettings, list_cases, load_case
from .engine import DoseEngine, PlanResult
from .matrix import BUILD_COUNTS, cache_key, cache_path, default_cache_dir
from .simulator import DoseSimulator
from .weights import canonical_weights

__all__ = [
    "CaseSpec", "GoalSpec", "ObjectiveSpec", "PlanSettings", "list_cases", "load_case", "DoseEngine", "PlanResult",
    "BUILD_COUNTS", "cache_key", "cache_path", "default_cache_dir", "DoseSimulator", "canonical_weights",
]
