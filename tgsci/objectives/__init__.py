"""The Objective interface and its optional capabilities (``base``), and plain functions as objectives
(``function``). Each kind's own objective lives in its domain package (``tgsci.domains.molecule``, ``.plan``)."""

from .base import Evaluation, InvalidCandidate, Objective

__all__ = ["Evaluation", "InvalidCandidate", "Objective"]
