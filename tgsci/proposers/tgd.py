"""The TGD proposer: the PyTorch-like primitives, one set per run.

Bound once per run: the variable ``x``, the simulator call (the objective's evaluation of a
value in words), and one ``TGD`` that owns the bounded history and the objective's value
format. Each step is the three lines the primitives notebook teaches::

    loss = self.simulator(x)          # forward: the simulator's numbers, verbalized
    loss.backward(self.feedback_engine)  # the textual gradient on x (1 LLM call)
    self.tgd.step()                   # k validated proposals (1 LLM call + bounded retries)
"""

from __future__ import annotations


from typing import Optional

from ..engine import EngineError, Usage, is_embedded
from ..functions import SimulatorCall
from ..objectives.base import Mutates, ShowsReferences
from ..optim import DUPLICATE, TGD, History
from ..variable import Variable
from .base import LoopState, Proposal, Proposer, unique_new

FALLBACK = "fallback"


class TGDProposer(Proposer):
    name = "tgd"
    with_feedback = True

    def __init__(self, engine=None, optimizer_engine=None, max_retries: int = 1, history_best: int = 3, history_recent: int = 3,
                 fallback: Optional[bool] = None):
        """``fallback``: when a step's LLM reply holds no new valid value, add one candidate made by the
        objective's mutation operator, labelled ``origin = "fallback: ..."`` in the record and reports
        (default: on for the embedded model, whose replies repeat themselves; off for API models)."""
        if engine is None:
            from ..engine import Engine

            engine = Engine()  # the embedded model
        self.feedback_engine = engine
        self.optimizer_engine = optimizer_engine or engine
        self.max_retries = max_retries
        self.history_best = history_best
        self.history_recent = history_recent
        self.fallback = is_embedded(self.optimizer_engine) if fallback is None else fallback

    def describe(self) -> dict:
        return {
            "method": self.name,
            "feedback_engine": self.feedback_engine.describe(),
            "optimizer_engine": self.optimizer_engine.describe(),
            "max_retries": self.max_retries,
            "history": {"best": self.history_best, "recent": self.history_recent},
            "fallback": self.fallback,
        }

    def bind(self, state: LoopState) -> None:
        objective = state.objective
        self.objective = objective
        self.x = Variable(state.current.value, role_description=objective.role_description)

        # the embedded model: the same numbers in fewer prompt tokens (Objective.verbalize's brief form)
        brief = is_embedded(self.feedback_engine)

        def simulate(value: str):
            ev = state.measurement(value)
            return ev, objective.verbalize(ev, state.start, state.best, brief=brief)

        self.tgd = TGD(
            [self.x], self.optimizer_engine, value_format=objective.value_format, objective=objective.describe(),
            constraints=objective.constraints(), validate=objective.checked, max_retries=self.max_retries,
            history=History(self.history_best, self.history_recent, objective.direction),
            min_valid=1,  # <= 2 LLM calls per step unless no proposal at all is usable
            references=objective.prompt_references() if isinstance(objective, ShowsReferences) else [],
        )
        goal = objective.describe()
        if self.tgd.continue_feedback:  # the embedded model: stable blocks first, cached across steps
            goal += "\n" + self.tgd.context()
        self.simulator = SimulatorCall(simulate, goal)

    def tell(self, evaluations, failures) -> None:
        for ev in evaluations:
            self.tgd.remember(ev.value, ev.score if ev.valid else None, self.objective.summarize(ev))
        for f in failures:
            if f.reason != DUPLICATE:  # a repeat is in the history already: showing it again invites more copies
                self.tgd.remember(f.text, None, self.objective.invalid_text(f.reason))

    def propose(self, state: LoopState, k: int) -> Proposal:
        x, tgd = self.x, self.tgd
        tgd.zero_grad()
        x.set_value(state.current.value)
        tgd.n_proposals = k
        tgd.seed = state.rng.randrange(2**31)  # the loop re-seeds its RNG per step: resumable
        usage = Usage()
        try:
            loss = self.simulator(x)
            if self.with_feedback:
                loss.backward(self.feedback_engine)
            for g in x.gradients:
                usage.add(g.data.get("usage") or Usage())
            [result] = tgd.step()
        except EngineError as exc:
            exc.usage = usage.plus(getattr(exc, "usage", None))  # what this step spent before failing
            raise
        usage.add(result.usage)
        proposal = Proposal(values=result.values, failures=result.failures, loss=loss.value,
                            feedback=x.gradient_text(), replies=result.replies, usage=usage)
        if self.fallback and not proposal.values:
            self._add_fallback(state, proposal)
        return proposal

    def _add_fallback(self, state: LoopState, proposal: Proposal, tries: int = 50) -> None:
        """One candidate by the objective's mutation operator: of a value the LLM repeated (what it
        meant to try), else of the best so far. Nothing when the objective has no such operator."""
        repeated = [f.text for f in proposal.failures if f.reason == DUPLICATE]
        parents = [(p, "a repeated LLM proposal") for p in repeated[:1]] + [(state.best.value, "the best so far")]
        if not isinstance(self.objective, Mutates):
            return
        tried = state.tried()
        for parent, what in parents:
            for _ in range(tries):
                try:
                    value = unique_new(self.objective, self.objective.neighbor(parent, state.rng), tried, set())
                except NotImplementedError:  # an objective whose neighbor() opts out at run time
                    return
                if value is not None:
                    proposal.values.append(value)
                    proposal.origins[value] = f"{FALLBACK}: mutation of {what}"
                    return


class NoFeedbackProposer(TGDProposer):
    """The ablation of the textual gradient: TGD's proposal call (the same objective, history, reference
    designs, constraints, grammar and budget) with the feedback call left out, so the prompt reads
    "(no feedback)" where TGD's carries the LLM's critique. What TGD gains over it is what the feedback adds."""

    name = "tgd-nofeedback"
    with_feedback = False

