"""Test doubles: an engine that replays scripted replies and a cheap deterministic objective.

Used only by the unit tests of the loop machinery; the product and the end-to-end tests use
real engines and real simulators.
"""

from __future__ import annotations

import json
from typing import Callable, Optional

from tgsci.engine import EngineError, Reply, Usage
from tgsci.objectives.function import FunctionObjective


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


class NumberObjective(FunctionObjective):
    """Find an integer close to a secret, as a plain function: score = |n - target|. Counts simulator calls."""

    def __init__(self, target: int = 42, max_abs: int = 10**6):
        def distance(value: str):
            self.simulated.append(value)
            d = abs(int(value) - target)
            return d, f"The number {value} is {d:g} away from the hidden integer (lower is better)."

        def integer(text: str) -> str:
            if not text.lstrip("-").isdigit() or abs(int(text)) > max_abs:
                raise ValueError(f"{text!r} is not an integer between -{max_abs} and {max_abs}")
            return str(int(text))

        super().__init__(distance, "Find the hidden integer; the score is the distance to it.", validate=integer,
                         role="integer written in decimal", constraints=[f"an integer between -{max_abs} and {max_abs}"],
                         neighbor=lambda v, rng: str(int(v) + rng.randint(-5, 5)))
        self.what, self.target, self.simulated = "number", target, []

    def fingerprint(self):
        return {"kind": "number", "target": self.target}

    def crossover(self, a, b, rng):
        return str((int(a) + int(b)) // 2)


def proposals_json(*values) -> str:
    return json.dumps({"proposals": list(values)})


def transient_error() -> EngineError:
    return EngineError("scripted outage")
