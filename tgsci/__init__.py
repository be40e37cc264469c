"""tgsci: optimize molecules and treatment plans with textual gradients (TextGrad).

Two levels of API: PyTorch-like primitives (Variable, TextLoss, SimulatorCall, TGD) and the
study-like ``optimize()`` loop that the CLI, sweeps and notebooks call. ``build_objective``
turns a spec (a dict or TOML table) into a domain objective (molecule, plan).
"""

from .version import __version__
from .engine import Engine, EngineError, MissingKeyError, Usage  # noqa: E402
from .formats import ValueFormat  # noqa: E402
from .functions import LLMCall, SimulatorCall, TextLoss  # noqa: E402
from .loop import OptimizationResult, optimize  # noqa: E402
from .objectives.base import Evaluation, InvalidCandidate, Objective  # noqa: E402
from .objectives.function import FunctionObjective  # noqa: E402
from .optim import TGD, History  # noqa: E402
from .variable import Variable  # noqa: E402
from .domains import build_objective  # noqa: E402

__all__ = [
    "__version__", "Engine", "EngineError", "MissingKeyError", "Usage", "ValueFormat", "LLMCall", "SimulatorCall",
    "TextLoss", "OptimizationResult", "optimize", "Evaluation", "InvalidCandidate", "Objective", "FunctionObjective",
    "TGD", "History", "Variable", "build_objective",
]
