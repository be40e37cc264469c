"""Structured output for proposals: the JSON shape asked of the LLM, how it is enforced, how it is read.

Every proposal reply is ``{"proposals": [item, ...]}``. API models get a JSON schema through
``response_format``; the embedded llama.cpp model gets a GBNF grammar (when the objective
supplies one for an item) so that even a 135M-parameter model produces parseable output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional


class ParseError(ValueError):
    """The reply does not contain a usable proposals list."""


# A proposals reply is a few hundred tokens (its max_tokens is set per item); anything longer is
# clipped before parsing, so a runaway or hostile reply costs bounded time and memory.
MAX_REPLY_CHARS = 32_000
# Start positions tried when looking for the first JSON value in prose: bounds the scan to
# O(MAX_JSON_STARTS x length) instead of one decode attempt per bracket (quadratic).
MAX_JSON_STARTS = 32


@dataclass(frozen=True)
class ValueFormat:
    """How one value of a variable is written: what TGD asks for and how the engine enforces it.

    ``schema``: JSON schema of one item (API models, ``response_format``); ``grammar``: GBNF
    rules defining ``item`` (the embedded model; None: the schema is used); ``example``: one
    item as it appears in the reply; ``hint``: one sentence on the format for the prompt;
    ``max_tokens_per_item``: the reply's token budget per proposal. ``placeholder`` and
    ``short_hint``: the item and the hint in the embedded model's compact prompt (default: the
    example and the hint); a small model copies concrete example values, so give it a placeholder.
    ``quoted``: the grammar's ``item`` is the text inside a JSON string (True) or a JSON value
    itself (False, e.g. an object written compactly).
    """

    schema: dict = field(default_factory=lambda: {"type": "string"})
    grammar: Optional[str] = None
    example: str = '"..."'
    hint: str = ""
    max_tokens_per_item: int = 96
    placeholder: Optional[str] = None
    short_hint: Optional[str] = None
    quoted: bool = True

    @property
    def compact_example(self) -> str:
        return self.example if self.placeholder is None else self.placeholder

    @property
    def compact_hint(self) -> str:
        return self.hint if self.short_hint is None else self.short_hint


def proposals_schema(item_schema: dict, k: int) -> dict:
    return {
        "type": "object",
        "properties": {"proposals": {"type": "array", "items": item_schema, "minItems": k, "maxItems": k}},
        "required": ["proposals"],
    }


def proposals_grammar(item_rules: str, k: int, quoted: bool = True) -> str:
    """GBNF for ``{"proposals": ["<item>", ...]}`` with exactly k items.

    ``item_rules`` must define a rule named ``item`` producing the text inside the quotes (no
    quote or backslash characters), or with ``quoted=False`` a JSON value written as is.
    """
    items = ' ", " '.join(['"\\"" item "\\""' if quoted else "item"] * k)
    return f'root ::= "{{\\"proposals\\": [" {items} "]}}"\n{item_rules}'


def structured_kwargs(engine, value_format: ValueFormat, k: int) -> dict:
    """The kwargs that make ``engine`` return the proposals JSON."""
    model = getattr(engine, "model", "") or ""
    if model.startswith("local/") and value_format.grammar:
        return {"grammar": proposals_grammar(value_format.grammar, k, value_format.quoted)}
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "proposals", "schema": proposals_schema(value_format.schema, k), "strict": False},
        }
    }


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_proposals(text: str) -> list[str]:
    """Read the proposals list from a reply; objects are returned as canonical JSON strings.

    Tolerates code fences and prose around the JSON; raises ParseError saying what is wrong, and
    nothing else: the reply is untrusted (deep nesting, huge numbers, NUL bytes are all a ParseError).
    """
    if not isinstance(text, str) or not text.strip():
        raise ParseError("the reply was empty")
    if len(text) > MAX_REPLY_CHARS:
        text = text[:MAX_REPLY_CHARS]
    try:
        return _parse(text)
    except ParseError:
        raise
    except (RecursionError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise ParseError(f"the reply could not be read as JSON ({type(exc).__name__})") from None


def _parse(text: str) -> list[str]:
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    data: Any = None
    for chunk in candidates:
        data = _first_json(chunk)
        if data is not None:
            break
    if not (isinstance(data, list) or (isinstance(data, dict) and "proposals" in data)):
        data = _complete_items(text) or data
    if data is None:
        raise ParseError("no JSON found in the reply")
    if isinstance(data, dict):
        if "proposals" not in data:
            raise ParseError(f'the JSON has no "proposals" key (keys: {", ".join(map(str, data)) or "none"})')
        data = data["proposals"]
    if not isinstance(data, list):
        raise ParseError('"proposals" must be a list')
    out = []
    for item in data:
        if isinstance(item, str):
            out.append(item.strip())
        elif isinstance(item, (dict, list)):
            out.append(json.dumps(item, sort_keys=True))
        elif item is not None:
            out.append(str(item))
    if not out:
        raise ParseError("the proposals list is empty")
    return out


_LIST_START = re.compile(r'"proposals"\s*:\s*\[')


def _complete_items(text: str) -> Optional[list]:
    """The whole items of a proposals list that was cut off (a reply stopped at its token limit):
    a small model's one runaway value should not cost the values it finished before it."""
    match = _LIST_START.search(text)
    if not match:
        return None
    decoder, items, pos = json.JSONDecoder(), [], match.end()
    while True:
        pos = len(text) - len(text[pos:].lstrip(" \n\t,"))
        try:
            item, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        items.append(item)
    return items or None


def _first_json(text: str) -> Any:
    text = text.strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    decoder = json.JSONDecoder()
    for n, match in enumerate(re.finditer(r"[\[{]", text)):
        if n >= MAX_JSON_STARTS:
            break
        try:
            value, _ = decoder.raw_decode(text[match.start():])
            return value
        except (ValueError, RecursionError):
            continue
    return None


def validated(validate: Callable[[str], str], raw: Any) -> str:
    """``validate(raw)``, total: whatever the validator raises on untrusted text (a RecursionError
    on deep nesting, an OverflowError on a 4,000-digit number) comes out as a ValueError whose
    message is the reason recorded with the rejected proposal."""
    try:
        return validate(raw if isinstance(raw, str) else str(raw))
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - untrusted input must never end a run
        raise ValueError(f"could not be read ({type(exc).__name__}: {str(exc)[:200]})") from None
