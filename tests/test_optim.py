"""TGD: prompt content (history, whole values, bounded size), validation, retries, dedup."""

from scripted import NumberObjective, ScriptedEngine, proposals_json

from tgsci import TGD, History, Variable


def _tgd(engine, k=2, history=None, **kw):
    objective = NumberObjective()
    var = Variable("10", objective.role_description)
    var.gradients.append(Variable("go higher", "feedback", requires_grad=False))
    opt = TGD([var], engine, n_proposals=k, history=history or History(), validate=objective.validate,
              constraints=objective.constraints(), objective=objective.describe(), **kw)
    return opt, var


def test_prompt_holds_value_feedback_constraints_and_history():
    history = History(n_best=2, n_recent=2)
    history.add("5", 37.0, "distance 37")
    history.add("30", 12.0, "distance 12")
    history.add("abc", None, "invalid number: 'abc' is not an integer")
    engine = ScriptedEngine([proposals_json("40", "41")])
    opt, var = _tgd(engine, history=history)
    result = opt.propose(var)
    prompt = engine.prompts()[0]
    assert result.values == ["40", "41"]
    for needle in ("<VALUE>10</VALUE>", "go higher", "best: 30 -> distance 12", "invalid number", "an integer between"):
        assert needle in prompt, needle


def test_long_values_are_never_elided():
    value = " ".join(f"w{i}" for i in range(400))
    engine = ScriptedEngine([proposals_json("1")])
    opt = TGD([Variable(value, "long text")], engine, n_proposals=1)
    opt.propose(opt.parameters[0])
    assert value in engine.prompts()[0]


def test_prompt_size_is_bounded_over_many_steps():
    history = History(n_best=3, n_recent=3)
    sizes = []
    for step in range(60):
        engine = ScriptedEngine([proposals_json(str(1000 + step))])
        opt, var = _tgd(engine, k=1, history=history)
        opt.propose(var)
        sizes.append(len(engine.prompts()[0]))
        history.add(str(step), float(100 - step % 7), f"distance {100 - step % 7}")
    assert max(sizes[10:]) - min(sizes[10:]) < 40  # flat, not growing with the step count
    assert max(sizes) < 3000


def test_invalid_and_unparseable_replies_are_retried_with_the_error_then_recorded():
    engine = ScriptedEngine(["I think 40 would be good", proposals_json("x1", "40"), proposals_json("41")])
    opt, var = _tgd(engine, k=2, max_retries=2)
    result = opt.propose(var)
    assert result.values == ["40", "41"]
    reasons = [f.reason for f in result.failures]
    assert any("unparseable" in r for r in reasons) and any("not an integer" in r for r in reasons)
    # the retry prompt carries the error back to the LLM, and asks only for what is missing
    assert "not an integer" in engine.prompts()[2] and "1 valid values" in engine.prompts()[2]
    # the retry replaces the previous exchange: 4 messages, never a growing conversation
    assert len(engine.requests[2]["messages"]) == 4


def test_retries_are_bounded():
    engine = ScriptedEngine(["junk"] * 10)
    opt, var = _tgd(engine, k=2, max_retries=2)
    result = opt.propose(var)
    assert result.values == [] and len(engine.requests) == 3 and len(result.failures) == 3


def test_duplicates_of_current_history_and_each_other_are_rejected():
    history = History()
    history.add("40", 2.0, "distance 2")
    engine = ScriptedEngine([proposals_json("10", "40", "41", "41", "42")])
    opt, var = _tgd(engine, k=3, history=history, max_retries=0)
    result = opt.propose(var)
    assert result.values == ["41", "42"]
    assert sum("already tried" in f.reason for f in result.failures) == 3


def test_step_sets_the_parameter_and_zero_grad_clears_feedback():
    engine = ScriptedEngine([proposals_json("40")])
    opt, var = _tgd(engine, k=1)
    opt.step()
    assert var.value == "40"
    opt.zero_grad()
    assert var.gradients == []


def test_structured_output_is_requested():
    engine = ScriptedEngine([proposals_json("40", "41")])
    opt, var = _tgd(engine, k=2)
    opt.propose(var)
    kwargs = engine.requests[0]["kwargs"]
    assert kwargs["response_format"]["json_schema"]["schema"]["properties"]["proposals"]["maxItems"] == 2
    assert kwargs["max_tokens"] > 0


def test_a_reply_cut_at_the_token_limit_keeps_its_whole_values_and_retries_with_that_reason():
    engine = ScriptedEngine([('{"proposals": ["40", "4', "length"), proposals_json("40", "41")])
    opt, var = _tgd(engine, k=2)
    result = opt.propose(var)
    assert result.values == ["40", "41"] and "cut off at the token limit" in engine.prompts()[1]
    assert 'with 1 valid values' in engine.prompts()[1]  # "40" came from the cut reply: only one more is asked


def test_each_attempt_gets_its_own_seed_and_retries_sample_warmer():
    engine = ScriptedEngine(["junk", proposals_json("40")])
    engine.sampling = {"temperature": 0.8}
    opt, var = _tgd(engine, k=1, seed=1234)
    opt.propose(var)
    first, retry = (r["kwargs"] for r in engine.requests)
    assert first["seed"] == 1234 and "temperature" not in first
    assert retry["seed"] == 1235 and retry["temperature"] == 1.05


def test_min_valid_stops_retrying_once_enough_proposals_are_usable():
    engine = ScriptedEngine([proposals_json("40", "40")])
    opt, var = _tgd(engine, k=2, min_valid=1)
    result = opt.propose(var)
    assert result.values == ["40"] and len(engine.requests) == 1


def test_duplicates_alone_are_not_retried_unless_asked():
    engine = ScriptedEngine([proposals_json("10"), proposals_json("40")])
    opt, var = _tgd(engine, k=1)
    assert opt.propose(var).values == [] and len(engine.requests) == 1
    engine = ScriptedEngine([proposals_json("10"), proposals_json("40")])
    opt, var = _tgd(engine, k=1, retry_duplicates=True)
    assert opt.propose(var).values == ["40"] and len(engine.requests) == 2


def _feedback_then_update(embedded: bool):
    """One primitives step (simulator call, backward, TGD step) on an engine that says whether it is embedded."""
    from tgsci import SimulatorCall

    engine = ScriptedEngine(["Go higher: try 40 or more.", proposals_json("40", "41"), "bad", proposals_json("50", "51")])
    engine.embedded = embedded
    objective = NumberObjective()
    x = Variable("10", objective.role_description)
    loss = SimulatorCall(lambda v: (None, f"distance {abs(int(v) - 42)}"), objective.describe())(x)
    loss.backward(engine)
    opt = TGD([x], engine, n_proposals=2, validate=objective.validate, objective=objective.describe())
    opt.propose(x)
    return engine


def test_the_embedded_model_gets_the_update_as_a_follow_up_of_the_feedback_exchange():
    """Its KV cache then holds everything the two calls share: only the follow-up is new prompt work."""
    from tgsci import prompts
    from tgsci.functions import EMBEDDED_FEEDBACK_MAX_TOKENS

    engine = _feedback_then_update(embedded=True)
    feedback, update = engine.requests[0], engine.requests[1]
    assert feedback["kwargs"]["max_tokens"] == EMBEDDED_FEEDBACK_MAX_TOKENS
    assert feedback["messages"][0]["content"] == prompts.EMBEDDED_SYSTEM
    exchange = feedback["messages"] + [{"role": "assistant", "content": "Go higher: try 40 or more."}]
    assert update["messages"][:3] == exchange  # the same prefix, token for token
    followup = update["messages"][3]["content"]
    assert "Write 2 new" not in followup and "Now write 2 new" in followup and "<VALUE>" not in followup


def test_api_models_keep_the_standalone_update_prompt():
    from tgsci import prompts

    engine = _feedback_then_update(embedded=False)
    update = engine.requests[1]["messages"]
    assert [m["role"] for m in update] == ["system", "user"] and update[0]["content"] == prompts.TGD_SYSTEM
    assert "<VALUE>10</VALUE>" in update[1]["content"] and "Go higher: try 40 or more." in update[1]["content"]
    assert engine.requests[0]["messages"][0]["content"] == prompts.SIMULATOR_BACKWARD_SYSTEM


def test_the_no_feedback_ablation_asks_only_for_proposals_with_the_same_prompt_otherwise():
    from scripted import NumberObjective, ScriptedEngine, proposals_json

    from tgsci import optimize
    from tgsci.prompts import TGD_SYSTEM
    from tgsci.proposers import make_proposer

    seen = []

    def respond(messages, kwargs):
        seen.append(messages)
        return "Go higher." if messages[0]["content"] != TGD_SYSTEM else proposals_json(str(10 * len(seen)))

    for method in ("tgd", "tgd-nofeedback"):
        seen.clear()
        result = optimize(NumberObjective(), "1", method=make_proposer(method, ScriptedEngine(respond=respond)), max_steps=2,
                          n_proposals=1, patience=None)
        systems = [m[0]["content"] == TGD_SYSTEM for m in seen]
        updates = [m[-1]["content"] for m in seen if m[0]["content"] == TGD_SYSTEM]
        if method == "tgd":
            assert systems == [False, True, False, True] and "Go higher." in updates[0]
        else:  # one call per step, the proposal prompt with the feedback left out
            assert systems == [True, True] and "(no feedback)" in updates[0] and "Go higher." not in updates[0]
        assert len(result.steps) == 3 and result.best.valid
