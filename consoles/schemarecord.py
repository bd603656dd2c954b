"""The JSON Schema of a TOML file, generated from what its parser reads.

A :class:`~.tomlschema.TableReader` with a record notes every key the
parser reads: its type, whether it has a default, the bounds, choices and
shape its checks hold it to, and which keys depend on another key's value
(``branch``). Parsing known-good files with a record gives the schema of
everything those parses reached; rules between keys that JSON Schema does
not say simply (``renew_s`` below ``lease_s``) stay the parser's alone.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}

Shape = tuple[str, ...]


@dataclass
class _Table:
    schemas: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # key -> the distinct schemas seen
    required: dict[str, bool] = field(default_factory=dict)  # key -> required every time it was read
    variants: dict[str, dict[Any, dict[str, bool]]] = field(default_factory=dict)  # key -> value -> keys read then
    any_key: bool = False


@dataclass
class SchemaRecord:
    """What the parser read, table by table; :meth:`schema` turns it into JSON Schema (2020-12)."""

    tables: dict[Shape, _Table] = field(default_factory=lambda: defaultdict(_Table))

    def key(self, shape: Shape, name: str, kinds: tuple[type, ...], words: str, extra: dict[str, Any], *,
            required: bool, variant: tuple[str, Any] | None) -> None:
        table = self.tables[shape]
        types = sorted({_JSON_TYPES[k] for k in kinds if k in _JSON_TYPES})
        if "number" in types and "integer" in types:
            types.remove("integer")
        schema: dict[str, Any] = {"type": types[0] if len(types) == 1 else types, **extra, "description": words}
        if "const" in extra:
            schema.pop("type")
        seen = table.schemas.setdefault(name, [])
        if schema not in seen:
            seen.append(schema)
        if variant is None:
            table.required[name] = table.required.get(name, True) and required
        else:
            keys = table.variants.setdefault(variant[0], {}).setdefault(variant[1], {})
            keys[name] = keys.get(name, True) and required

    def any_key(self, shape: Shape) -> None:
        self.tables[shape].any_key = True

    def schema(self, shape: Shape = ()) -> dict[str, Any]:
        """The JSON Schema of the table at ``shape``."""
        table = self.tables[shape]
        if table.any_key:
            return {"type": "object", "additionalProperties": self.schema(shape + ("*",))}
        properties = {name: self._property(shape, name, alternatives) for name, alternatives in table.schemas.items()}
        out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        required = [name for name, always in table.required.items() if always]
        if required:
            out["required"] = required
        branches = [self._branch(key, value, keys, table) for key, values in table.variants.items()
                    for value, keys in values.items()]
        if branches:
            out["allOf"] = branches
        return out

    def _property(self, shape: Shape, name: str, alternatives: list[dict[str, Any]]) -> dict[str, Any]:
        resolved = []
        for schema in alternatives:
            if schema.get("type") == "object" and shape + (name,) in self.tables:
                schema = {**self.schema(shape + (name,)), "description": schema["description"]}
            resolved.append(schema)
        return resolved[0] if len(resolved) == 1 else {"anyOf": resolved}

    @staticmethod
    def _branch(key: str, value: Any, keys: dict[str, bool], table: _Table) -> dict[str, Any]:
        """Keys read only under other values of ``key`` are refused; keys required under this one, required."""
        elsewhere = {k for v, ks in table.variants[key].items() if v != value for k in ks} - set(keys)
        then: dict[str, Any] = {"properties": {k: False for k in sorted(elsewhere)}}
        required = [k for k, always in keys.items() if always]
        if required:
            then["required"] = required
        return {"if": {"properties": {key: {"const": value}}, "required": [key]}, "then": then}


def dumps(schema: dict[str, Any]) -> str:
    """The schema as the file it is published in."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
