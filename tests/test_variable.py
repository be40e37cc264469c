"""The graph: predecessors, topological order, backward order and feedback routing."""

import pytest
from scripted import ScriptedEngine

from tgsci import LLMCall, SimulatorCall, TextLoss, Variable


def test_role_description_required():
    with pytest.raises(ValueError):
        Variable("x", role_description="  ")


def test_topological_order_parents_first_and_no_duplicates():
    a = Variable("a", "first")
    b = Variable("b", "second", predecessors=[a])
    c = Variable("c", "third", predecessors=[a, b])
    order = c.topological_order()
    assert [v.value for v in order] == ["a", "b", "c"]


def test_backward_runs_children_before_parents_and_routes_feedback():
    engine = ScriptedEngine(["an answer", "judgement: too vague", "make the answer concrete", "ask a sharper question"])
    question = Variable("What is QED?", "question to a language model")
    answer = LLMCall(engine, output_role="answer")(question)
    loss = TextLoss("Judge the answer's precision.", engine)(answer)
    loss.backward(engine)
    # forward: 2 calls; backward: loss -> answer, then answer -> question
    assert len(engine.requests) == 4
    assert answer.gradient_text() == "make the answer concrete"
    assert question.gradient_text() == "ask a sharper question"
    # the second backward call saw the first one's feedback on the answer
    assert "make the answer concrete" in engine.prompts()[3]


def test_requires_grad_false_gets_no_feedback_and_costs_no_call():
    engine = ScriptedEngine(["out"])
    fixed = Variable("constant", "fixed instruction", requires_grad=False)
    out = LLMCall(engine)(fixed)
    out.backward(engine)
    assert fixed.gradients == [] and len(engine.requests) == 1


def test_simulator_call_forward_runs_the_callable_and_backward_uses_its_words():
    calls = []

    def simulate(value):
        calls.append(value)
        return {"vina": -7.9}, "Vina -7.9 kcal/mol, lower is better"

    engine = ScriptedEngine(["add a carboxylic acid"])
    x = Variable("c1ccccc1", "SMILES string")
    result = SimulatorCall(simulate, "bind PPARA")(x)
    assert calls == ["c1ccccc1"] and result.data["measurement"] == {"vina": -7.9}
    result.backward(engine)
    prompt = engine.prompts()[0]
    assert "Vina -7.9 kcal/mol" in prompt and "bind PPARA" in prompt and "c1ccccc1" in prompt
    assert x.gradient_text() == "add a carboxylic acid"


def test_backward_without_engine_is_a_clear_error():
    x = Variable("v", "value")
    out = SimulatorCall(lambda v: (None, "result"), "goal")(x)
    with pytest.raises(ValueError, match="engine"):
        out.backward(None)
