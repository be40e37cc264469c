"""Reading proposals from replies, and the constrained-output request shapes."""

import json

import pytest

from tgsci.formats import ParseError, ValueFormat, parse_proposals, proposals_grammar, structured_kwargs


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"proposals": ["CCO", "CCN"]}', ["CCO", "CCN"]),
        ('Sure! ```json\n{"proposals": ["CCO"]}\n``` hope it helps', ["CCO"]),
        ('Here: {"proposals": [" c1ccccc1 "]} done', ["c1ccccc1"]),
        ('["CCO", "CCC"]', ["CCO", "CCC"]),
        ('{"proposals": [{"PTV": 100, "Rectum": 5}]}', [json.dumps({"PTV": 100, "Rectum": 5}, sort_keys=True)]),
        # cut off at the token limit: the whole items before the cut are kept, the partial one is not
        ('{"proposals": ["CCO", "c1ccccc1C(=O', ["CCO"]),
        ('{"proposals": ["CCO",  "CCN" ,"CC', ["CCO", "CCN"]),
        ('{"proposals": [{"PTV": 100}, {"PTV": 9', [json.dumps({"PTV": 100})]),
    ],
)
def test_parse_tolerates_fences_prose_and_objects(text, expected):
    assert parse_proposals(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [("", "empty"), ("   ", "empty"), ("no json here at all", "no JSON"), ('{"values": ["x"]}', "no \"proposals\" key"),
     ('{"proposals": "CCO"}', "must be a list"), ('{"proposals": []}', "empty"),
     ('{"proposals": ["c1ccccc1C(=O', "no JSON")],
)
def test_parse_errors_say_what_is_wrong(text, message):
    with pytest.raises(ParseError, match=message):
        parse_proposals(text)


def test_grammar_has_exactly_k_items():
    g = proposals_grammar('item ::= "C"+', 3)
    assert g.count('"\\"" item "\\""') == 3 and g.startswith("root ::=")


def test_structured_kwargs_grammar_for_local_schema_for_api():
    class E:
        model = "local/smollm2-135m"

    fmt = ValueFormat(schema={"type": "string"}, grammar='item ::= "C"')
    local = structured_kwargs(E(), fmt, 2)
    assert "grammar" in local and "response_format" not in local
    E.model = "openai/gpt-4o"
    api = structured_kwargs(E(), fmt, 2)
    schema = api["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["proposals"]["minItems"] == 2 and "grammar" not in api
