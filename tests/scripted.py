"""Test doubles: an engine that replays scripted replies and a cheap deterministic objective.

Used only by the unit tests of the loop machinery; the product and the end-to-end tests use
real engines and real simulators.
"""

from __future__ import annotations

import json
import random
from typing import Callable, Optional

from tgsci.engine import EngineError, Reply, Usage
from tgsci.objectives.base import Evaluation, InvalidCandidate, Objective


class ScriptedEngine:
    """Returns replies from a list (or a function of the messages); records every request."""

    def __init__(self, replies=None, respond: Optional[Callable[[list[dict], dict], str]] = None, model: str = "scripted/test"):
        self.replies = list(replies or [])
        self.respond = respond
        self.model = model
        self.requests: list[dict] = []
        self.usage = Usage()

    def describe(self) -> dict:
        return {"model": self.model}

    def __call__(self, prompt, system=None, **kwargs) -> Reply:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if system:
            messages.insert(0, {"role": "system", "content": system})
        self.requests.append({"messages": messages, "kwargs": kwargs})
        if self.respond is not None:
            text = self.respond(messages, kwargs)
        elif self.replies:
            text = self.replies.pop(0)
        else:
            raise AssertionError("scripted engine ran out of replies")
        if isinstance(text, Exception):
            raise text
        finish = "stop"
        if isinstance(text, tuple):  # (text, finish_reason)
            text, finish = text
        tokens = sum(len(m["content"].split()) for m in messages)
        usage = Usage(calls=1, prompt_tokens=tokens, completion_tokens=len(text.split()))
        self.usage.add(usage)
        return Reply(text=text, finish_reason=finish, usage=usage)

    def prompts(self) -> list[str]:
        return ["\n".join(m["content"] for m in r["messages"]) for r in self.requests]


class NumberObjective(Objective):
    """Find an integer close to a secret: score = |n - target|. Counts simulator calls."""

    kind = "number"
    role_description = "integer written in decimal"
    what = "number"
    item_schema = {"type": "string"}
    example = '"17"'

    def __init__(self, target: int = 42, max_abs: int = 10**6):
        self.target = target
        self.max_abs = max_abs
        self.simulated: list[str] = []

    def describe(self) -> str:
        return "Find the hidden integer; the score is the distance to it."

    def constraints(self) -> list[str]:
        return [f"an integer between -{self.max_abs} and {self.max_abs}"]

    def validate(self, text: str) -> str:
        text = str(text).strip()
        try:
            n = int(text)
        except ValueError:
            raise InvalidCandidate(f"{text!r} is not an integer") from None
        if abs(n) > self.max_abs:
            raise InvalidCandidate(f"{n} is out of range")
        return str(n)

    def evaluate(self, values):
        out = []
        for v in values:
            try:
                n = int(self.validate(v))
            except InvalidCandidate as exc:
                out.append(Evaluation(str(v), None, {}, str(exc), simulated=False))
                continue
            self.simulated.append(str(n))
            out.append(Evaluation(str(n), float(abs(n - self.target)), {"n": n}))
        return out

    def summarize(self, ev):
        return self.invalid_text(ev.error) if not ev.valid else f"distance {ev.score:g}"

    def verbalize(self, ev, start, best):
        if not ev.valid:
            return self.invalid_text(ev.error)
        return f"The number {ev.value} is {ev.score:g} away from the hidden integer (lower is better)."

    def fingerprint(self):
        return {"kind": self.kind, "target": self.target}

    def neighbor(self, value, rng: random.Random):
        return str(int(value) + rng.randint(-5, 5))

    def crossover(self, a, b, rng):
        return str((int(a) + int(b)) // 2)


def proposals_json(*values) -> str:
    return json.dumps({"proposals": list(values)})


def transient_error() -> EngineError:
    return EngineError("scripted outage")
