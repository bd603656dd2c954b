"""The profile JSON Schema, generated from the profile parser (one source of truth).

Every built-in profile is parsed with a :class:`~.schemarecord.SchemaRecord`
that notes each key the parser reads, once as shipped and once with every
optional table it has set to ``false`` (as a profile extending it may); the
schema is what those parses reached. docs/profile-schema.json is this module's output (a test keeps it
current): ``python -m ailive.consoles.profile_schema > docs/profile-schema.json``.
It validates a resolved profile (``extends`` applied); rules between keys
(``renew_s`` below ``lease_s``, ``receive_port`` for a desk that does not
answer the sender, ``[subscription]`` or ``[feedback]``) are the parser's.
"""
from __future__ import annotations

import sys
from typing import Any

from .profile import REMOVABLE_TABLES, SCHEMA_VERSION, _raw_profiles, _resolve, builtin_profile_dir, parse_profile
from .schemarecord import SchemaRecord, dumps


def profile_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a resolved profile table."""
    record = SchemaRecord()
    raw = _raw_profiles([("built-in", builtin_profile_dir())])
    for name in sorted(raw):
        table = _resolve(name, raw)
        parse_profile(table, f"{name}.toml", record)
        removed = {key: False for key in REMOVABLE_TABLES if key in table}  # what a profile that extends it may drop
        parse_profile({**table, **removed}, f"{name}.toml", record)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://ailive.invalid/schemas/profile-{SCHEMA_VERSION}.json",
        "title": f"ailive desk profile, schema {SCHEMA_VERSION}",
        "description": "A desk profile with 'extends' resolved, generated from the profile parser.",
        **record.schema(),
    }


def main() -> None:
    sys.stdout.write(dumps(profile_schema()))


if __name__ == "__main__":
    main()
