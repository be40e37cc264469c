"""Differentiable text functions: an LLM call, a text loss and a simulator call.

Each ``forward`` builds an output Variable whose ``_backward`` closure asks the engine for
feedback on the inputs that require it. A simulator call runs a Python callable that
returns numbers and their verbalization; its backward is one LLM call.
"""

from __future__ import annotations

from typing import Callable, Optional

from . import prompts
from .engine import is_embedded
from .variable import Variable

FEEDBACK_WORDS = 120
FEEDBACK_MAX_TOKENS = 256
FEEDBACK_MAX_CHARS = 1500  # keeps the TGD prompt bounded even when a model rambles
# The embedded model: its feedback is read by itself, rambles past ~60 words, and every token
# generated costs ~10 ms on a CPU.
EMBEDDED_FEEDBACK_WORDS = 30
EMBEDDED_FEEDBACK_MAX_TOKENS = 48


def _clip(text: str, limit: int = FEEDBACK_MAX_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _feedback_words(engine) -> int:
    return EMBEDDED_FEEDBACK_WORDS if is_embedded(engine) else FEEDBACK_WORDS


def _give_feedback(variable: Variable, engine, prompt: str, system: str) -> None:
    """One LLM call whose (clipped) answer becomes a gradient of ``variable``.

    The call's usage is kept on the gradient (``data["usage"]``) so whoever steps can account for
    it, and the exchange itself (``data["exchange"]``) so an optimizer may continue it."""
    if engine is None:
        raise ValueError("backward needs an engine: loss.backward(engine)")
    embedded = is_embedded(engine)
    if embedded:
        system = prompts.EMBEDDED_SYSTEM
    reply = engine(prompt, system=system, max_tokens=EMBEDDED_FEEDBACK_MAX_TOKENS if embedded else FEEDBACK_MAX_TOKENS)
    gradient = Variable(_clip(reply.text), role_description=f"feedback to {variable.role_description}", requires_grad=False)
    gradient.data["usage"] = reply.usage
    gradient.data["exchange"] = [{"role": "system", "content": system}, {"role": "user", "content": prompt},
                                 {"role": "assistant", "content": gradient.value}]
    variable.gradients.append(gradient)


class LLMCall:
    """``output = LLMCall(engine, system_prompt)(input_variable)``."""

    def __init__(self, engine, system_prompt: Optional[str] = None, output_role: str = "response of a language model"):
        self.engine = engine
        self.system_prompt = system_prompt
        self.output_role = output_role

    def __call__(self, variable: Variable) -> Variable:
        reply = self.engine(variable.value, system=self.system_prompt)
        output = Variable(reply.text, role_description=self.output_role, predecessors=[variable])
        output._backward = lambda engine: self._backward(variable, output, engine)
        return output

    def _backward(self, variable: Variable, output: Variable, engine) -> None:
        if not variable.requires_grad:
            return
        prompt = prompts.LLM_BACKWARD.format(
            input_role=variable.role_description,
            input_value=variable.value,
            output_role=output.role_description,
            output_value=output.value,
            output_feedback=output.gradient_text() or "(none: judge the output on its own merits)",
            max_words=_feedback_words(engine or self.engine),
        )
        _give_feedback(variable, engine or self.engine, prompt, prompts.LLM_BACKWARD_SYSTEM)


class TextLoss:
    """An LLM judges a variable against an instruction; the judgement is the loss."""

    def __init__(self, evaluation_instruction: str, engine):
        self.instruction = evaluation_instruction
        self.engine = engine

    def __call__(self, variable: Variable) -> Variable:
        reply = self.engine(f"{variable.role_description}:\n{variable.value}", system=self.instruction)
        loss = Variable(reply.text, role_description="evaluation of " + variable.role_description, predecessors=[variable])

        def backward(engine) -> None:
            if not variable.requires_grad:
                return
            prompt = prompts.LOSS_BACKWARD.format(
                input_role=variable.role_description,
                input_value=variable.value,
                instruction=self.instruction,
                output_value=loss.value,
                max_words=_feedback_words(engine or self.engine),
            )
            _give_feedback(variable, engine or self.engine, prompt, prompts.LLM_BACKWARD_SYSTEM)

        loss._backward = backward
        return loss


class SimulatorCall:
    """Run a simulator on a variable's value; the output is its verbalized result.

    ``simulate(value) -> (measurement, verbalization)``; the measurement is kept on
    ``output.data['measurement']`` for the optimizer and the run record. ``objective`` tells
    the backward LLM call what the numbers are for.
    """

    def __init__(self, simulate: Callable[[str], tuple[object, str]], objective: str):
        self.simulate = simulate
        self.objective = objective

    def __call__(self, variable: Variable) -> Variable:
        measurement, verbal = self.simulate(variable.value)
        output = Variable(verbal, role_description=f"simulation result for the {variable.role_description}", predecessors=[variable])
        output.data["measurement"] = measurement

        def backward(engine) -> None:
            if not variable.requires_grad:
                return
            downstream = output.gradient_text()
            prompt = prompts.SIMULATOR_BACKWARD.format(
                objective=self.objective,
                role=variable.role_description,
                value=variable.value,
                result=output.value,
                downstream=prompts.DOWNSTREAM_FEEDBACK.format(feedback=downstream) if downstream else "",
                max_words=_feedback_words(engine),
            )
            _give_feedback(variable, engine, prompt, prompts.SIMULATOR_BACKWARD_SYSTEM)

        output._backward = backward
        return output
