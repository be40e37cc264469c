"""The TGD proposer: verbalized result -> feedback (1 LLM call) -> k proposals (1 LLM call + retries)."""

from __future__ import annotations

from ..functions import SimulatorCall
from ..optim import TGD
from ..variable import Variable
from .base import LoopState, Proposal, Proposer


class TGDProposer(Proposer):
    name = "tgd"

    def __init__(self, feedback_engine, optimizer_engine=None, max_retries: int = 1):
        self.feedback_engine = feedback_engine
        self.optimizer_engine = optimizer_engine or feedback_engine
        self.max_retries = max_retries

    def describe(self) -> dict:
        return {
            "method": self.name,
            "feedback_engine": self.feedback_engine.describe(),
            "optimizer_engine": self.optimizer_engine.describe(),
            "max_retries": self.max_retries,
        }

    def propose(self, state: LoopState, k: int) -> Proposal:
        objective = state.objective
        current = state.current
        verbal = objective.verbalize(current, state.start, state.best)
        variable = Variable(current.value, role_description=objective.role_description)
        # The measurement already exists: the simulator call only replays it into the graph.
        loss = SimulatorCall(lambda _value: (current, verbal), objective.describe())(variable)
        loss.backward(self.feedback_engine)
        optimizer = TGD(
            [variable],
            self.optimizer_engine,
            constraints=objective.constraints(),
            n_proposals=k,
            history=state.history,
            validate=objective.validate,
            objective=objective.describe(),
            item_schema=objective.item_schema,
            item_grammar=objective.item_grammar,
            example=objective.example,
            format_hint=objective.format_hint,
            max_retries=self.max_retries,
            max_tokens_per_item=objective.max_tokens_per_item,
            seed=state.rng.randrange(2**31),  # state.rng is seeded per (run seed, step): resumable
            min_valid=1,  # <= 2 LLM calls per step unless no proposal at all is usable
        )
        result = optimizer.propose(variable)
        return Proposal(
            values=result.values,
            failures=result.failures,
            loss=verbal,
            feedback=variable.gradient_text(),
            replies=result.replies,
        )
