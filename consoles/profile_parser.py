"""Reading a desk profile's TOML table into a :class:`~.profile_model.Profile`, refusing what does not fit.

Every key is checked for its type and range, and a key nobody reads is an
error naming the file and the key (see :mod:`.tomlschema`).
"""
from __future__ import annotations

from typing import Any

from .errors import ProfileSchemaError
from .faderlaw import LinearDbLaw, make_law
from .profile_model import (SCHEMA_VERSION, OSC_TYPES, REPLY_FIELDS, TAKEOVER_RULES, MODEL_MATCH, POSITION_LAWS, METER_REQUEST_ARGS, FaderParam, MuteParam, NameParam, TrimParam, Identify, Subscription, Feedback, Meters, Node, Reply, SimSettings, Profile)
from .schemarecord import SchemaRecord
from .tomlschema import TableReader


def _channel_template(reader: TableReader, key: str) -> str:
    return reader.get(key, str, expected="an OSC address template containing {ch}", check=lambda v: v.startswith("/") and "{ch" in v,
                      schema={"pattern": r"^/.*\{ch"})


def _osc_type(reader: TableReader, key: str = "type") -> str:
    return reader.choice(key, OSC_TYPES)


def _parse_fader(reader: TableReader) -> FaderParam:
    address = _channel_template(reader, "address")
    osc_type = reader.choice("type", ("f",))
    law_name = reader.choice("law", ("x32", "db"))
    reader.branch("law", law_name)
    position_law = "steps"
    if law_name == "x32":
        law = make_law("x32", steps=reader.integer("steps", 1024, low=2, high=1 << 20),
                       rule=reader.choice("quantize", ("int_1023_5", "round"), "int_1023_5"))
    else:
        law = make_law("db", min_db=reader.number("min_db"), max_db=reader.number("max_db"),
                       step_db=reader.number("step_db", 0.1, low=1e-6))
        position_law = reader.choice("position_law", POSITION_LAWS, "steps")
    reply = _reply_fields(reader)
    reader.finish()
    return FaderParam(address, osc_type, reply, law=law, position_law=position_law)


def _reply_fields(reader: TableReader) -> tuple[str, ...]:
    """``reply``: the fields of a query's answer; exactly one of them is the value."""
    fields = reader.get("reply", list, ["value"], expected="a list of " + ", ".join(REPLY_FIELDS) + " holding 'value' once",
                        check=lambda v: all(f in REPLY_FIELDS for f in v) and v.count("value") == 1,
                        schema={"items": {"enum": list(REPLY_FIELDS)}, "contains": {"const": "value"},
                                "minContains": 1, "maxContains": 1})
    return tuple(fields)


def _parse_identify(reader: TableReader) -> Identify:
    queries = reader.get("queries", list, expected="a list of OSC addresses",
                         check=lambda v: bool(v) and all(isinstance(q, str) and q.startswith("/") for q in v),
                         schema={"minItems": 1, "items": {"type": "string", "pattern": "^/"}})
    result = Identify(
        queries=tuple(queries),
        model_arg=reader.integer("model_arg", low=0, high=16),
        name_arg=reader.integer("name_arg", None, low=0, high=16),
        firmware_arg=reader.integer("firmware_arg", None, low=0, high=16),
        probe=reader.get("probe", str, queries[0], check=lambda v: v.startswith("/"), expected="an OSC address",
                         schema={"pattern": "^/"}),
        split=reader.get("split", str, ""),
        model_match=reader.choice("model_match", MODEL_MATCH, "exact"),
    )
    reader.finish()
    return result


def _parse_subscription(reader: TableReader) -> Subscription:
    result = Subscription(
        address=reader.get("address", str, check=lambda v: v.startswith("/"), expected="an OSC address",
                         schema={"pattern": "^/"}),
        renew_s=reader.number("renew_s", low=0.1),
        lease_s=reader.number("lease_s", low=0.1),
        max_clients=reader.integer("max_clients", low=1, high=1024),
        echoes_own_writes=reader.get("echoes_own_writes", bool, False),
        takeover=reader.choice("takeover", TAKEOVER_RULES, "refuse"),
    )
    if result.renew_s >= result.lease_s:
        raise reader.fail("renew_s", f"a period shorter than lease_s ({result.lease_s:g})", result.renew_s)
    reader.finish()
    return result


def _parse_feedback(reader: TableReader) -> Feedback:
    result = Feedback(
        clients=reader.integer("clients", 1, low=1, high=1024),
        echoes_own_writes=reader.get("echoes_own_writes", bool, False),
    )
    reader.finish()
    return result


def _parse_nodes(reader: TableReader) -> tuple[Node, ...]:
    nodes = []
    for key, item in reader.each_table():
        osc_type = _osc_type(item)
        kinds = {"i": int, "f": float, "s": str}[osc_type]
        nodes.append(Node(
            key=key,
            address=item.get("address", str, check=lambda v: v.startswith("/"), expected="an OSC address",
                         schema={"pattern": "^/"}),
            type=osc_type,
            default=item.get("default", kinds),
            count=item.integer("count", 1, low=1, high=1024),
            start=item.integer("start", 1, low=0),
            pair=item.get("pair", bool, False),
        ))
        item.finish()
    reader.finish()
    return tuple(nodes)


def _parse_sim(reader: TableReader | None) -> SimSettings:
    if reader is None:
        return SimSettings(model="", firmware="", desk_name="ailive-sim", replies={})
    replies = {}
    replies_reader = reader.table("replies")
    if replies_reader is not None:
        for address, item in replies_reader.each_table():
            tags = item.get("type", str, check=lambda v: all(t in OSC_TYPES for t in v), expected="OSC type tags (i, f, s)",
                            schema={"pattern": "^[" + "".join(OSC_TYPES) + "]*$"})
            args = item.get("args", list, check=lambda v: len(v) == len(tags) and all(isinstance(a, str) for a in v),
                            expected="a list of strings, one per type tag", schema={"items": {"type": "string"}})
            replies[address] = Reply(tags, tuple(args))
            item.finish()
        replies_reader.finish()
    result = SimSettings(
        model=reader.get("model", str),
        firmware=reader.get("firmware", str, ""),
        desk_name=reader.get("desk_name", str, "ailive-sim"),
        replies=replies,
        serial=reader.get("serial", str, ""),
        device_timeout_s=reader.number("device_timeout_s", 5.0, low=0.1, high=3600.0),
        hand_hold_s=reader.number("hand_hold_s", 0.0, low=0.0, high=60.0),
    )
    reader.finish()
    return result


def parse_profile(data: dict[str, Any], path: str, record: SchemaRecord | None = None) -> Profile:
    """Validate a merged profile table into a :class:`Profile`; ``record`` notes what was read (the schema)."""
    top = TableReader(data, path, "", ProfileSchemaError, record)
    schema = top.integer("schema", low=1, high=SCHEMA_VERSION)
    top.get("extends", str, "")
    assert schema == SCHEMA_VERSION
    channels = top.integer("channels", low=1, high=256)
    identify = top.table("identify", required=True)
    subscription = _optional_table(top, "subscription")
    fader = top.table("fader", required=True)
    mute = top.table("mute", required=True)
    name_table = top.table("channel_name", required=True)
    trim = _optional_table(top, "trim")
    meters = _optional_table(top, "meters")
    nodes = _optional_table(top, "nodes")
    feedback = top.table("feedback")
    assert identify and fader and mute and name_table
    if subscription is not None and feedback is not None:
        raise top.fail("feedback", "either [subscription] or [feedback], not both (a desk feeds back one way)")
    profile = Profile(
        name=top.get("name", str, check=lambda v: v.isidentifier() or v.replace("-", "_").isidentifier(),
                      expected="a short name of letters, digits, - and _", schema={"pattern": r"^[^\W\d][\w-]*$"}),
        vendor=top.get("vendor", str),
        description=top.get("description", str, ""),
        transport=top.choice("transport", ("osc-udp",)),
        port=top.integer("port", low=1, high=65535),
        channels=channels,
        models=tuple(top.get("models", list, expected="a list of model names",
                             check=lambda v: bool(v) and all(isinstance(m, str) for m in v),
                             schema={"minItems": 1, "items": {"type": "string"}})),
        model_prefixes=tuple(top.get("model_prefixes", list, [], expected="a list of model name prefixes",
                                     check=lambda v: all(isinstance(m, str) and m for m in v),
                                     schema={"items": {"type": "string", "minLength": 1}})),
        subscribe=top.get("subscribe", bool, True),
        max_queries_per_s=top.number("max_queries_per_s", 0.0, low=0.0, high=10000.0),
        replies_to_sender=top.get("replies_to_sender", bool, True),
        max_writes_per_s=top.number("max_writes_per_s", 20.0, low=0.1, high=1000.0),
        liveness_timeout_s=top.number("liveness_timeout_s", 3.0, low=0.2, high=60.0),
        poll_period_s=top.number("poll_period_s", 0.0, low=0.0, high=60.0),
        identify=_parse_identify(identify),
        subscription=_parse_subscription(subscription) if subscription else None,
        fader=_parse_fader(fader),
        mute=_parse_mute(mute),
        name_param=_parse_name(name_table),
        trim=_parse_trim(trim) if trim else None,
        meters=_parse_meters(meters) if meters else None,
        nodes=_parse_nodes(nodes) if nodes else (),
        sim=_parse_sim(top.table("sim")),
        source=path,
        query_suffix=top.get("query_suffix", str, "", expected="an address suffix starting with '/' (or empty)",
                             check=lambda v: v == "" or (v.startswith("/") and len(v) > 1), schema={"pattern": "^(/.+)?$"}),
        receive_port=top.integer("receive_port", None, low=1, high=65535),
        pushes_hand_moves=top.get("pushes_hand_moves", bool, True),
        feedback=_parse_feedback(feedback) if feedback else None,
    )
    if not profile.replies_to_sender and profile.receive_port is None:
        raise top.fail("receive_port", "the port the desk sends to (the desk does not answer to the sender's port)")
    if not profile.pushes_hand_moves and profile.poll_period_s <= 0:
        raise top.fail("poll_period_s", "a period > 0: the desk does not push hand moves, only polling finds them",
                       profile.poll_period_s)
    if not profile.subscribe and profile.poll_period_s <= 0:
        raise top.fail("poll_period_s", "a period > 0: with subscribe = false only polling follows the desk",
                       profile.poll_period_s)
    top.finish()
    return profile


def _optional_table(top: TableReader, name: str) -> TableReader | None:
    """An optional table, or None when it is absent or ``false`` (the desk has no such thing)."""
    if top.data.get(name) is False:
        top.get(name, bool, expected="false (the desk has none)", schema={"const": False})
        return None
    return top.table(name)


def _parse_mute(reader: TableReader) -> MuteParam:
    osc_type = reader.choice("type", ("i", "f"))
    result = MuteParam(_channel_template(reader, "address"), osc_type, _reply_fields(reader),
                       muted_value=reader.get("muted_value", (int, float), 1))
    reader.finish()
    return result


def _parse_name(reader: TableReader) -> NameParam:
    result = NameParam(_channel_template(reader, "address"), reader.choice("type", ("s",)), _reply_fields(reader),
                       max_length=reader.integer("max_length", 12, low=1, high=256))
    reader.finish()
    return result


def _parse_trim(reader: TableReader) -> TrimParam:
    address = _channel_template(reader, "address")
    osc_type = reader.choice("type", ("f",))
    reader.choice("law", ("linear",))
    law = LinearDbLaw(reader.number("min_db"), reader.number("max_db"), reader.number("step_db", low=1e-6))
    reader.finish()
    return TrimParam(address, osc_type, law=law)


def _parse_meters(reader: TableReader) -> Meters:
    result = Meters(
        request=reader.get("request", str),
        renew=reader.get("renew", str),
        bank=reader.get("bank", str),
        decoder=reader.choice("decoder", ("x32_blob", "xair_int16")),
        count=reader.integer("count", low=1, high=4096),
        lease_s=reader.number("lease_s", 10.0, low=0.5),
        request_arg=reader.choice("request_arg", METER_REQUEST_ARGS, "time_factor"),
    )
    reader.finish()
    return result
