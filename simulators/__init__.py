"""Simulators: batch-first adapters to the numerical engines (Vina + RDKit, pyRadPlan).

One interface: ``evaluate(candidates) -> list[Measurement]``, deterministic for a given
seed, cached. No LLM or text code lives here.
"""

from .measurement import Measurement

__all__ = ["Measurement"]
