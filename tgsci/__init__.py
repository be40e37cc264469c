"""tgsci: optimize molecules and treatment plans with textual gradients (TextGrad).

Two levels of API: PyTorch-like primitives (Variable, TextLoss, SimulatorCall, TGD) and the
study-like ``optimize()`` loop that the CLI, sweeps and notebooks call.
"""

__version__ = "0.1.0"

from .engine import Engine, EngineError, MissingKeyError, Usage  # noqa: E402
from .functions import LLMCall, SimulatorCall, TextLoss  # noqa: E402
from .loop import OptimizationResult, optimize  # noqa: E402
from .objectives.base import Evaluation, InvalidCandidate, Objective  # noqa: E402
from .optim import TGD, History  # noqa: E402
from .variable import Variable  # noqa: E402

__all__ = [
    "__version__", "Engine", "EngineError", "MissingKeyError", "Usage", "LLMCall", "SimulatorCall",
    "TextLoss", "OptimizationResult", "optimize", "Evaluation", "InvalidCandidate", "Objective",
    "TGD", "History", "Variable",
]
