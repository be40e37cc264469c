"""Domain objectives. Heavy ones (docking, dose) are imported from their own modules on demand."""

from .base import Evaluation, InvalidCandidate, Objective

__all__ = ["Evaluation", "InvalidCandidate", "Objective"]
