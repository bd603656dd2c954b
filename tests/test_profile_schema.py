"""The published JSON Schema of profile schema 1 (docs/profile-schema.json) is the parser's own, and says what it says.

The schema is generated from the parser (``ailive.consoles.profile_schema``);
these tests check the published file is that output, and read it with an
independent validator (``jsonschema``) against what the parser accepts and refuses.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ailive.consoles.errors import ProfileSchemaError
from ailive.consoles.profile import SCHEMA_VERSION, load_profiles, parse_profile, resolved_table
from ailive.consoles.profile_schema import profile_schema
from ailive.consoles.schemarecord import dumps

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "profile-schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def violations(table: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(table)]


def test_the_published_schema_is_the_parsers_current_output():
    assert SCHEMA_PATH.read_text() == dumps(profile_schema()), \
        "regenerate: python -m ailive.consoles.profile_schema > docs/profile-schema.json"


def test_the_schema_is_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_built_in_profiles_resolved_are_valid():
    for name in load_profiles():
        assert violations(resolved_table(name)) == [], name


def test_schema_version_is_the_parsers():
    assert SCHEMA["properties"]["schema"]["minimum"] == SCHEMA["properties"]["schema"]["maximum"] == SCHEMA_VERSION


BREAKAGES = {
    "unknown key": lambda t: t.update(faders=24),
    "wrong type": lambda t: t.update(channels="24"),
    "out of range": lambda t: t.update(max_writes_per_s=0.0),
    "template without the placeholder": lambda t: t["fader"].update(address="/ch/mix/fader"),
    "unknown law": lambda t: t["fader"].update(law="audio_taper"),
    "a dB key on a position law": lambda t: t["fader"].update(min_db=-90.0),
    "reply without the value": lambda t: t["mute"].update(reply=["text"]),
    "reply with the value twice": lambda t: t["mute"].update(reply=["value", "value"]),
    "missing table": lambda t: t.pop("identify"),
    "node without a default": lambda t: t["nodes"]["chlink"].pop("default"),
    "query not an address": lambda t: t["identify"].update(queries=["xinfo"]),
    "a table that is true": lambda t: t.update(trim=True),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_what_the_parser_refuses_the_schema_refuses(case):
    table = copy.deepcopy(resolved_table("x32"))
    BREAKAGES[case](table)
    with pytest.raises(ProfileSchemaError):
        parse_profile(table, "broken.toml")
    assert violations(table), case


def test_a_db_law_without_its_range_is_refused_by_both():
    table = copy.deepcopy(resolved_table("wing"))
    del table["fader"]["min_db"]
    with pytest.raises(ProfileSchemaError):
        parse_profile(table, "broken.toml")
    assert violations(table)


@pytest.mark.parametrize("removed", ["trim", "meters", "nodes"])
def test_a_table_set_to_false_is_accepted_by_both(removed):
    table = {**copy.deepcopy(resolved_table("x32")), removed: False}
    parse_profile(table, "child.toml")
    assert violations(table) == []


def parser_keys(table: dict[str, Any], path: tuple[str, ...]) -> set[str]:
    """The keys the parser knows in one table: it names them when it refuses an unknown one."""
    data = copy.deepcopy(table)
    target = data
    for part in path:
        target = target[part]
    target["zz_unknown"] = 1
    with pytest.raises(ProfileSchemaError) as refused:
        parse_profile(data, "probe.toml")
    assert refused.value.key == ".".join((*path, "zz_unknown"))
    return set(re.search(r"known: (.*)\)$", refused.value.expected).group(1).split(", "))


def schema_keys(path: tuple[str, ...]) -> set[str]:
    schema = SCHEMA
    for part in path:
        step = schema.get("properties", {}).get(part) or schema["additionalProperties"]
        schema = next(s for s in step.get("anyOf", [step]) if s.get("type") == "object")
    return set(schema["properties"])


@pytest.mark.parametrize("profile,path", [
    ("x32", ("identify",)), ("x32", ("subscription",)), ("digico", ("feedback",)), ("x32", ("mute",)),
    ("x32", ("channel_name",)), ("x32", ("trim",)), ("x32", ("meters",)), ("x32", ("nodes", "chlink")), ("x32", ("sim",)),
    ("x32", ("sim", "replies", "/xinfo")),
])
def test_schema_and_parser_know_the_same_keys(profile, path):
    assert schema_keys(path) == parser_keys(resolved_table(profile), path)


def test_top_level_keys_are_the_parsers():
    # "extends" is read by the parser too; a resolved table no longer holds it.
    assert schema_keys(()) == parser_keys(resolved_table("x32"), ()) | {"extends"}


def test_fader_keys_of_both_laws():
    position, db = parser_keys(resolved_table("x32"), ("fader",)), parser_keys(resolved_table("wing"), ("fader",))
    assert schema_keys(("fader",)) == position | db
    branches = {b["if"]["properties"]["law"]["const"]: b["then"] for b in SCHEMA["properties"]["fader"]["allOf"]}
    assert {k for k, v in branches["x32"]["properties"].items() if v is False} == db - position
    assert {k for k, v in branches["db"]["properties"].items() if v is False} == position - db
