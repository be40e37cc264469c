"""Methods that propose candidates: one module each behind ``Proposer``, one registry of names.

``make_proposer("tpe")`` builds one by name; ``METHODS`` lists the names every entry point
(CLI, sweep specs, benchmarks) accepts. TPE's module (and optuna) is imported when it is asked for;
the other three are imported here.
"""

from __future__ import annotations

import importlib

from .base import LoopState, Proposal, Proposer
from .graph_ga import GeneticProposer
from .random_search import RandomProposer
from .tgd import TGDProposer

#: method name -> (module, class); the one list of method names
METHODS: dict[str, tuple[str, str]] = {
    "tgd": ("tgsci.proposers.tgd", "TGDProposer"),
    "tgd-nofeedback": ("tgsci.proposers.tgd", "NoFeedbackProposer"),  # the ablation: no textual gradient
    "random": ("tgsci.proposers.random_search", "RandomProposer"),
    "graph-ga": ("tgsci.proposers.graph_ga", "GeneticProposer"),
    "tpe": ("tgsci.proposers.tpe", "TPEProposer"),
    "nsga2": ("tgsci.proposers.tpe", "NSGA2Proposer"),
}
ALIASES = {"ga": "graph-ga"}
LLM_METHODS = ("tgd", "tgd-nofeedback")  # methods that call an LLM (take engines)


def canonical_method(name: str) -> str:
    """The registered name for ``name`` (aliases resolved); ValueError lists the valid ones."""
    key = ALIASES.get(name, name)
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return key


def make_proposer(method: str, engine=None, optimizer_engine=None, **options) -> Proposer:
    """A new proposer for ``method``; engines go to LLM methods only."""
    key = canonical_method(method)
    module, cls = METHODS[key]
    proposer_cls = getattr(importlib.import_module(module), cls)
    if key in LLM_METHODS:
        return proposer_cls(engine, optimizer_engine, **options)
    return proposer_cls(**options)


__all__ = ["LoopState", "Proposal", "Proposer", "TGDProposer", "RandomProposer", "GeneticProposer", "METHODS", "ALIASES", "LLM_METHODS", "canonical_method", "make_proposer"]
