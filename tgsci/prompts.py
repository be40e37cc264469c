"""Every prompt tgsci sends, in one place.

Templates use ``str.format`` fields. Values are always inserted whole (no elision of the
middle of long values, unlike the reference TextGrad code); what keeps prompts bounded is
the number of history entries and the length cap on feedback text, not truncating values.
"""

# ---------------------------------------------------------------- the embedded model
# One system prompt for both calls of a step, so that the update call continues the feedback
# call's conversation and llama.cpp reuses its KV cache for everything the two calls share (the
# goal, the candidate, the result, the feedback): only the follow-up is new prompt work.
EMBEDDED_SYSTEM = (
    "You are an expert scientist who improves a design step by step: you read simulation results, "
    "give short concrete feedback, and when asked, propose better candidates."
)

# ---------------------------------------------------------------- generic LLM call backward
LLM_BACKWARD_SYSTEM = (
    "You are part of an optimization system that improves text by giving feedback. "
    "You give short, concrete, actionable criticism. You never rewrite the text yourself."
)

LLM_BACKWARD = """A language model received an input and produced an output.

Input ({input_role}):
<INPUT>{input_value}</INPUT>

Output ({output_role}):
<OUTPUT>{output_value}</OUTPUT>

Feedback on the output:
<FEEDBACK>{output_feedback}</FEEDBACK>

How should the input ({input_role}) change so that the output improves? Answer in at most {max_words} words."""

LOSS_BACKWARD = """An evaluator judged a {input_role}.

{input_role}:
<VALUE>{input_value}</VALUE>

Evaluation instruction:
<INSTRUCTION>{instruction}</INSTRUCTION>

Evaluation:
<EVALUATION>{output_value}</EVALUATION>

How should the {input_role} change to get a better evaluation? Answer in at most {max_words} words."""

# ---------------------------------------------------------------- simulator call backward
SIMULATOR_BACKWARD_SYSTEM = (
    "You are an expert scientist reviewing the result of a simulation. You explain what the numbers "
    "mean for the goal and say concretely what to change. You never write the new candidate yourself."
)

SIMULATOR_BACKWARD = """Goal: {objective}

Candidate ({role}):
<CANDIDATE>{value}</CANDIDATE>

Simulation result:
<RESULT>{result}</RESULT>
{downstream}
Give feedback on the candidate: which measured properties are good, which are bad, and two or three concrete changes that should improve the goal. Answer in at most {max_words} words."""

DOWNSTREAM_FEEDBACK = "\nFurther feedback on the result:\n<FEEDBACK>{feedback}</FEEDBACK>\n"

# ---------------------------------------------------------------- TGD update
TGD_SYSTEM = (
    "You are an optimizer. You improve a variable using feedback. "
    "You reply with JSON only, exactly in the requested format."
)

TGD_UPDATE = """Improve the {role}.
{objective_block}
Current value:
<VALUE>{value}</VALUE>

Feedback on the current value:
<FEEDBACK>{feedback}</FEEDBACK>
{history_block}{constraints_block}
{references_block}Write {k} new, different values of the {role} that follow the feedback and are better than the values above. {format_hint}
Reply with JSON only: {{"proposals": [{example}]}}"""

# The update as a follow-up to the feedback exchange (embedded model): the goal, the current
# value and the feedback are already in the conversation.
TGD_FOLLOWUP = """{history_block}{references_block}{constraints_block}
Now write {k} new, different values that follow your feedback and are better than the values above. {format_hint}
Reply with JSON only: {{"proposals": [{example}]}}"""

OBJECTIVE_BLOCK = "\nGoal: {objective}\n"

HISTORY_BLOCK = """
Values tried so far ({direction}):
{lines}
"""

HISTORY_LINE = "- {tag}{value} -> {summary}"

REFERENCES_BLOCK = """
Reference designs (worked examples, {direction}):
{lines}
"""

CONSTRAINTS_BLOCK = """
Constraints every value must satisfy:
{lines}
"""

RETRY = """Your reply could not be used: {errors}
Reply again with JSON only: {{"proposals": [{example}]}} with {k} valid values."""

# ---------------------------------------------------------------- feedback text for failures
INVALID_CANDIDATE = "invalid {what}: {reason}"
