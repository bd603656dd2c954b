"""The published JSON Schema of profile schema 1 (docs/profile-schema.json) says what the profile parser says."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ailive.consoles.errors import ProfileSchemaError
from ailive.consoles.profile import SCHEMA_VERSION, load_profiles, parse_profile, resolved_table

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "profile-schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}


def violations(schema: Any, value: Any, where: str = "") -> list[str]:
    """The JSON Schema keywords the profile schema uses, checked; an independent reading of the schema."""
    if schema is False:
        return [f"{where}: not allowed"]
    if schema is True:
        return []
    if "$ref" in schema:
        return violations(SCHEMA["$defs"][schema["$ref"].removeprefix("#/$defs/")], value, where)
    found: list[str] = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(isinstance(value, _TYPES[k]) and not (isinstance(value, bool) and k != "boolean") for k in kinds):
            return [f"{where}: not {schema['type']}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
        found.append(f"{where}: {value!r} out of range")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where}: too few items")
        if "contains" in schema:
            hits = sum(not violations(schema["contains"], item) for item in value)
            if not schema.get("minContains", 1) <= hits <= schema.get("maxContains", hits):
                found.append(f"{where}: {hits} items match 'contains'")
        for index, item in enumerate(value):
            found += violations(schema.get("items", True), item, f"{where}[{index}]")
    if isinstance(value, dict):
        found += [f"{where}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties", True))
            found += violations(sub, item, f"{where}.{key}")
    if "if" in schema:
        branch = "then" if not violations(schema["if"], value, where) else "else"
        found += violations(schema.get(branch, True), value, where)
    return found


def test_built_in_profiles_resolved_are_valid():
    for name in load_profiles():
        assert violations(SCHEMA, resolved_table(name)) == [], name


def test_schema_version_is_the_parsers():
    assert SCHEMA["properties"]["schema"] == {"const": SCHEMA_VERSION, "description": "The profile schema version."}


BREAKAGES = {
    "unknown key": lambda t: t.update(faders=24),
    "wrong type": lambda t: t.update(channels="24"),
    "template without the placeholder": lambda t: t["fader"].update(address="/ch/mix/fader"),
    "unknown law": lambda t: t["fader"].update(law="audio_taper"),
    "a dB key on a position law": lambda t: t["fader"].update(min_db=-90.0),
    "reply without the value": lambda t: t["mute"].update(reply=["text"]),
    "missing table": lambda t: t.pop("identify"),
    "node without a default": lambda t: t["nodes"]["chlink"].pop("default"),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_what_the_parser_refuses_the_schema_refuses(case):
    table = copy.deepcopy(resolved_table("x32"))
    BREAKAGES[case](table)
    with pytest.raises(ProfileSchemaError):
        parse_profile(table, "broken.toml")
    assert violations(SCHEMA, table), case


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
        schema = SCHEMA["$defs"][step["$ref"].removeprefix("#/$defs/")] if "$ref" in step else step
    return set(schema["properties"])


@pytest.mark.parametrize("profile,path", [
    ("x32", ()), ("x32", ("identify",)), ("x32", ("subscription",)), ("digico", ("feedback",)), ("x32", ("mute",)),
    ("x32", ("channel_name",)), ("x32", ("trim",)), ("x32", ("meters",)), ("x32", ("nodes", "chlink")), ("x32", ("sim",)),
    ("x32", ("sim", "replies", "/xinfo")),
])
def test_schema_and_parser_know_the_same_keys(profile, path):
    assert schema_keys(path) == parser_keys(resolved_table(profile), path)


def test_fader_keys_of_both_laws():
    position, db = parser_keys(resolved_table("x32"), ("fader",)), parser_keys(resolved_table("wing"), ("fader",))
    assert schema_keys(("fader",)) == position | db
    then = SCHEMA["$defs"]["fader"]["then"]["properties"]
    assert {k for k, v in then.items() if v is False} == position - db
