"""Textual Gradient Descent (TGD): turn feedback on a variable into k validated new values.

Differences from the reference TextGrad optimizer, on purpose:
- the history of candidates (best so far and most recent, with their scores) reaches the
  prompt, bounded in size;
- values go into the prompt whole;
- each proposal is parsed and validated by a callable the objective supplies; failures are
  sent back to the LLM as feedback for a bounded number of retries and are recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from . import prompts
from .engine import Usage, is_embedded
from .formats import ParseError, ValueFormat, parse_proposals, structured_kwargs, validated
from .variable import Variable


DUPLICATE = "already tried; propose something new"


def _parses(text: str) -> bool:
    """Whether a reply holds a proposals list: only such replies enter the LLM cache."""
    try:
        parse_proposals(text)
        return True
    except ParseError:
        return False


@dataclass
class HistoryEntry:
    value: str
    score: Optional[float]  # None: invalid or failed
    summary: str


class History:
    """Bounded memory of tried values: the ``n_best`` best and the ``n_recent`` latest."""

    def __init__(self, n_best: int = 3, n_recent: int = 3, direction: str = "lower score is better"):
        self.n_best = n_best
        self.n_recent = n_recent
        self.direction = direction
        self.entries: list[HistoryEntry] = []
        self.seen: set[str] = set()

    def add(self, value: str, score: Optional[float], summary: str) -> None:
        if score is not None and not math.isfinite(score):
            score = None
        self.entries.append(HistoryEntry(value, score, summary))
        self.seen.add(value)

    def selected(self) -> list[tuple[str, HistoryEntry]]:
        """(tag, entry) pairs shown in the prompt: best first, then recent ones not already shown."""
        valid = [e for e in self.entries if e.score is not None]
        best = sorted(valid, key=lambda e: e.score)[: self.n_best]
        shown = {id(e) for e in best}
        recent = [e for e in self.entries[::-1] if id(e) not in shown][: self.n_recent]
        return [("best: " if i == 0 else "good: ", e) for i, e in enumerate(best)] + [("recent: ", e) for e in recent]

    def render(self) -> str:
        pairs = self.selected()
        if not pairs:
            return ""
        lines = "\n".join(prompts.HISTORY_LINE.format(tag=tag, value=e.value, summary=e.summary) for tag, e in pairs)
        return prompts.HISTORY_BLOCK.format(direction=self.direction, lines=lines)


@dataclass
class ProposalFailure:
    text: str
    reason: str


@dataclass
class ProposalResult:
    """What one TGD step produced: valid values, rejected ones with reasons, raw replies, usage."""

    values: list[str] = field(default_factory=list)
    failures: list[ProposalFailure] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    prompt: str = ""
    usage: Usage = field(default_factory=Usage)


class TGD:
    """``TGD([x], engine, value_format=..., n_proposals=k, validate=...)``: one optimizer per run.

    It owns what its prompts need across steps: the bounded ``history`` of tried values (shown
    in the prompt; a proposal already in it is a duplicate) and the variable's ``value_format``
    (schema, grammar, example, hint, token budget). ``validate(text) -> normalized value``
    raises ValueError with a reason for a bad proposal. ``n_proposals`` and ``seed`` may be
    changed between steps (a loop near the end of its budget asks for fewer; a seed per step
    keeps a stalled loop from replaying the same request).
    """

    def __init__(
        self,
        parameters: Iterable[Variable],
        engine,
        *,
        value_format: Optional[ValueFormat] = None,
        objective: str = "",
        constraints: Iterable[str] = (),
        n_proposals: int = 1,
        validate: Optional[Callable[[str], str]] = None,
        history: Optional[History] = None,
        max_retries: int = 2,
        seed: Optional[int] = None,
        min_valid: Optional[int] = None,
        retry_duplicates: bool = False,
        references: Iterable[tuple[str, str, str]] = (),
        max_references: int = 3,
        continue_feedback: Optional[bool] = None,
    ) -> None:
        self.parameters = list(parameters)
        if not self.parameters:
            raise ValueError("TGD needs at least one parameter")
        if n_proposals < 1:
            raise ValueError("n_proposals must be >= 1")
        self.engine = engine
        self.value_format = value_format or ValueFormat()
        self.objective = objective
        self.constraints = list(constraints)
        self.n_proposals = n_proposals
        self.validate = validate or (lambda text: text)
        self.history = history if history is not None else History()
        self.max_retries = max_retries
        # A seed per step (and per retry) keeps a stalled loop from replaying the same reply:
        # the same prompt with the same seed, or a cache hit, would give the same proposals.
        self.seed = seed
        # Retry while fewer than min_valid proposals are usable (default: all k). The loop asks
        # for 1: a step with some new valid candidates goes on instead of paying another call.
        self.min_valid = min_valid
        # A model that repeats itself mostly repeats again when asked at once; the next step
        # (new feedback, new seed) is the better use of a call. Parse and validation errors are
        # retried: the error message is what the model needs.
        self.retry_duplicates = retry_duplicates
        # (name, value, one line of numbers): worked examples shown in every prompt, bounded (the
        # paper's reference plans); values whole, like everything else.
        self.references = list(references)[:max_references]
        # Ask for the update as a follow-up to the feedback exchange (default: for the embedded
        # model): the goal, value and feedback are then already in the prompt cache, and only the
        # history and the instruction are new tokens.
        self.continue_feedback = is_embedded(engine) if continue_feedback is None else continue_feedback

    def remember(self, value: str, score: Optional[float], summary: str) -> None:
        """Add a tried value with its score (None: invalid) and one line of numbers to the history."""
        self.history.add(value, score, summary)

    def zero_grad(self) -> None:
        for p in self.parameters:
            p.zero_grad()

    def step(self) -> list[ProposalResult]:
        """Propose for every parameter and set each to its first valid proposal."""
        results = []
        for p in self.parameters:
            result = self.propose(p)
            if result.values:
                p.set_value(result.values[0])
            results.append(result)
        return results

    def _constraints_block(self) -> str:
        if not self.constraints:
            return ""
        return prompts.CONSTRAINTS_BLOCK.format(lines="\n".join(f"- {c}" for c in self.constraints))

    def messages(self, variable: Variable, k: int) -> list[dict]:
        """The update request: a follow-up to the feedback exchange when it can continue it, else
        one standalone prompt with the goal, the value and the feedback."""
        exchange = self._feedback_exchange(variable)
        if exchange:
            shared = exchange[1]["content"]  # blocks the feedback prompt already holds are not repeated
            followup = prompts.TGD_FOLLOWUP.format(
                history_block=self.history.render(),
                references_block="" if self._references_block() in shared else self._references_block(),
                constraints_block="" if self._constraints_block() in shared else self._constraints_block(), k=k,
                format_hint=self.value_format.compact_hint, example=", ".join([self.value_format.compact_example] * k),
            )
            return exchange + [{"role": "user", "content": followup}]
        return [{"role": "system", "content": prompts.TGD_SYSTEM}, {"role": "user", "content": self.build_prompt(variable, k)}]

    def context(self) -> str:
        """The blocks that stay the same every step (reference designs, constraints): a caller that
        puts them in the feedback prompt gets them served from the KV cache on every step."""
        return self._references_block() + self._constraints_block()

    def _feedback_exchange(self, variable: Variable) -> list[dict]:
        if not self.continue_feedback or len(variable.gradients) != 1:
            return []
        return [dict(m) for m in variable.gradients[0].data.get("exchange") or []]

    def build_prompt(self, variable: Variable, k: int) -> str:
        return prompts.TGD_UPDATE.format(
            role=variable.role_description,
            objective_block=prompts.OBJECTIVE_BLOCK.format(objective=self.objective) if self.objective else "",
            value=variable.value,
            feedback=variable.gradient_text() or "(no feedback)",
            history_block=self.history.render(),
            references_block=self._references_block(),
            constraints_block=self._constraints_block(),
            k=k,
            format_hint=self.value_format.hint,
            example=", ".join([self.value_format.example] * k),
        )

    def _references_block(self) -> str:
        if not self.references:
            return ""
        lines = "\n".join(prompts.HISTORY_LINE.format(tag=f"{name}: ", value=value, summary=summary)
                          for name, value, summary in self.references)
        return prompts.REFERENCES_BLOCK.format(direction=self.history.direction, lines=lines)

    def propose(self, variable: Variable) -> ProposalResult:
        """Ask for k values, validate them, retry on failures with the errors as feedback."""
        k = self.n_proposals
        result = ProposalResult()
        messages = self.messages(variable, k)
        base = len(messages)
        result.prompt = messages[-1]["content"]
        accepted: set[str] = set()
        min_valid = k if self.min_valid is None else max(1, min(self.min_valid, k))
        for attempt in range(self.max_retries + 1):
            need = k - len(result.values)
            kwargs = structured_kwargs(self.engine, self.value_format, need)
            kwargs.setdefault("max_tokens", 32 + self.value_format.max_tokens_per_item * need)
            kwargs.update(self._sampling_for(attempt))
            reply = self.engine(messages, cache_if=_parses, **kwargs)
            result.usage.add(reply.usage)
            result.replies.append(reply.text)
            errors = self._collect(reply.text, variable.value, accepted, result)
            if reply.finish_reason == "length":  # whole values before the cut are kept (parse_proposals)
                errors.append("the reply was cut off at the token limit: write shorter values")
            only_duplicates = bool(errors) and all(e.endswith(DUPLICATE) for e in errors)
            if len(result.values) >= min_valid or attempt == self.max_retries or (only_duplicates and not self.retry_duplicates):
                break
            retry = prompts.RETRY.format(errors="; ".join(errors) or "too few values", k=k - len(result.values), example=self.value_format.example)
            # Bounded: the retry replaces, never extends, the previous exchange.
            messages = messages[:base] + [{"role": "assistant", "content": reply.text[:2000]}, {"role": "user", "content": retry}]
        return result

    def _sampling_for(self, attempt: int) -> dict:
        """Per-attempt sampling: a fresh seed, and a warmer temperature for retries."""
        out = {}
        if self.seed is not None:
            out["seed"] = self.seed + attempt
        base = (getattr(self.engine, "sampling", None) or {}).get("temperature")
        if attempt and base is not None:
            out["temperature"] = min(1.5, base + 0.25 * attempt)
        return out

    def _collect(self, text: str, current: str, accepted: set[str], result: ProposalResult) -> list[str]:
        try:
            raw_values = parse_proposals(text)
        except ParseError as exc:
            result.failures.append(ProposalFailure(text[:500], f"unparseable reply: {exc}"))
            return [str(exc)]
        errors = []
        for raw in raw_values:
            if len(result.values) >= self.n_proposals:
                break
            try:
                value = validated(self.validate, raw)
            except ValueError as exc:
                reason = str(exc) or type(exc).__name__
                result.failures.append(ProposalFailure(raw, reason))
                errors.append(f"{raw!r}: {reason}")
                continue
            if value == current or value in accepted or value in self.history.seen:
                reason = DUPLICATE
                result.failures.append(ProposalFailure(raw, reason))
                errors.append(f"{raw!r}: {reason}")
                continue
            accepted.add(value)
            result.values.append(value)
        return errors
