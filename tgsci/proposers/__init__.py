"""Methods that propose candidates; one module each, one interface (``Proposer.propose``)."""

from .base import LoopState, Proposal, Proposer
from .graph_ga import GeneticProposer
from .random_search import RandomProposer
from .tgd import TGDProposer

METHODS = ("tgd", "random", "graph-ga", "tpe")

__all__ = ["LoopState", "Proposal", "Proposer", "TGDProposer", "RandomProposer", "GeneticProposer", "METHODS"]
