"""Desk profiles: a desk family described as data, read from TOML.

A profile holds everything the generic OSC driver and simulator need:
address templates, type tags, the fader law, identification, subscription
and its lease, write-rate limit. Quirks are named settings, never name checks:
``query_suffix`` (a query is the address plus it: DiGiCo "/?"), ``reply`` of a
channel parameter (the fields of a query's answer: WING's fader ``,sff``),
``identify.split`` (one comma-joined identity string), ``models`` and
``model_prefixes`` (a family of model names, compared without case),
``replies_to_sender`` with
``receive_port`` (a desk that sends to a configured port), ``subscription.takeover``
(one subscriber console-wide, the last requester takes it), ``[feedback]``
(no subscription: one device gets everything, nothing expires),
``echoes_own_writes``, ``pushes_hand_moves`` with ``poll_period_s``, ``subscribe``
(false: poll only, leaving a one-subscriber desk's subscription to another app),
``max_queries_per_s`` (a desk that wants its queries paced), ``[fader] position_law``
(the curve of the 0..1 position a dB desk reports), ``[meters] request_arg``. An
optional table set to ``false`` says the desk has none (``trim = false`` in a profile
that extends one with a trim).

The profile is three modules: :mod:`.profile_model` (the data),
:mod:`.profile_parser` (TOML table to data) and this one (where profiles
are found, how ``extends`` resolves, and writing a table back as TOML);
every name callers use is importable from here.
"""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from .errors import ProfileError, ProfileSchemaError
from .profile_model import (METER_REQUEST_ARGS, MODEL_MATCH, OSC_TYPES, POSITION_LAWS, REMOVABLE_TABLES, REPLY_FIELDS,
                            SCHEMA_VERSION, TAKEOVER_RULES, ChannelParam, FaderParam, Feedback, Identify, Meters, MuteParam,
                            NameParam, Node, Profile, Reply, SimSettings, Subscription, TrimParam)
from .profile_parser import parse_profile
from .tomlschema import read_toml

__all__ = [
    "METER_REQUEST_ARGS", "MODEL_MATCH", "OSC_TYPES", "POSITION_LAWS", "PROFILES_ENV", "REMOVABLE_TABLES", "REPLY_FIELDS",
    "SCHEMA_VERSION", "SOURCE_KINDS", "TAKEOVER_RULES", "ChannelParam", "FaderParam", "Feedback", "Identify", "Meters",
    "MuteParam", "NameParam", "Node", "Profile", "Reply", "SimSettings", "Subscription", "TrimParam",
    "builtin_profile_dir", "dump_toml", "get_profile", "load_profile_file", "load_profile_files", "load_profiles",
    "parse_profile", "profile_search_path", "resolved_table", "user_profile_dir",
]

SOURCE_KINDS = ("built-in", "user", "dir")
#: os.pathsep-separated folders of profiles, searched after the user's config folder.
PROFILES_ENV = "AILIVE_PROFILES"


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child keys win; tables merge key by key so a profile states only what differs."""
    merged = dict(base)
    for key, value in child.items():
        if value is False and key in REMOVABLE_TABLES:  # the child has none of what its parent has
            merged[key] = False
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def builtin_profile_dir() -> Path:
    return Path(str(resources.files("ailive.consoles") / "profiles"))


def user_profile_dir() -> Path:
    """``$XDG_CONFIG_HOME/ailive/profiles`` (default ``~/.config/ailive/profiles``)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "ailive" / "profiles"


def profile_search_path(extra_dirs: list[Path] | None = None) -> list[tuple[str, Path]]:
    """Folders searched for profiles, in order, each with its source kind; later ones override earlier ones by name.

    Built-in, then the user's config folder, then ``$AILIVE_PROFILES`` (os.pathsep-separated), then ``extra_dirs``
    (``--profiles DIR``). A folder that does not exist holds no profiles.
    """
    path = [("built-in", builtin_profile_dir()), ("user", user_profile_dir())]
    path += [("dir", Path(d)) for d in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if d]
    path += [("dir", Path(d)) for d in extra_dirs or []]
    return path


#: name -> (raw table, file, source kind)
RawProfiles = dict[str, tuple[dict[str, Any], str, str]]


def _read_raw(path: Path) -> tuple[str, dict[str, Any]]:
    data = read_toml(path, ProfileSchemaError)
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise ProfileSchemaError(str(path), "name", "a string", name)
    return name, data


def _add_files(raw: RawProfiles, files: list[Path], kind: str) -> None:
    """Add profile files; two files with one name in one folder are an error naming both."""
    seen: dict[tuple[Path, str], Path] = {}
    for path in files:
        name, data = _read_raw(path)
        key = (path.resolve().parent, name)
        if key in seen:
            raise ProfileError(f"two profiles named {name!r} in one folder: {seen[key]} and {path}")
        seen[key] = path
        raw[name] = (data, str(path), kind)


def _raw_profiles(dirs: list[tuple[str, Path]]) -> RawProfiles:
    raw: RawProfiles = {}
    for kind, directory in dirs:
        if directory.is_dir():
            _add_files(raw, sorted(directory.glob("*.toml")), kind)
    return raw


def _resolve(name: str, raw: RawProfiles, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in chain:
        raise ProfileError(f"{raw[chain[0]][1]}: profile {chain[0]!r}: 'extends' forms a cycle: "
                           f"{' -> '.join(chain + (name,))}")
    data, path, _ = raw[name]
    parent = data.get("extends")
    if not parent:
        return data
    if parent not in raw:
        raise ProfileSchemaError(path, "extends", "the name of a known profile (" + ", ".join(sorted(raw)) + ")", parent)
    merged = _merge(_resolve(parent, raw, chain + (name,)), {k: v for k, v in data.items() if k != "extends"})
    return {k: v for k, v in merged.items() if not (v is False and k in REMOVABLE_TABLES)}


def _build(name: str, raw: RawProfiles) -> Profile:
    data, path, kind = raw[name]
    profile = parse_profile(_resolve(name, raw), path)
    return profile if kind == "built-in" else _with_kind(profile, kind)


def _with_kind(profile: Profile, kind: str) -> Profile:
    from dataclasses import replace

    return replace(profile, source_kind=kind)


def load_profiles(extra_dirs: list[Path] | None = None) -> dict[str, Profile]:
    """All profiles by name along :func:`profile_search_path`; later folders override earlier ones by name."""
    raw = _raw_profiles(profile_search_path(extra_dirs))
    return {name: _build(name, raw) for name in sorted(raw)}


def get_profile(name: str, extra_dirs: list[Path] | None = None) -> Profile:
    """One profile by name, or a clear error listing the known ones."""
    profiles = load_profiles(extra_dirs)
    try:
        return profiles[name] if name in profiles else profiles[name.lower()]
    except KeyError:
        raise ProfileError(f"unknown desk {name!r}; known desks: {', '.join(sorted(profiles))}") from None


def load_profile_files(files: list[Path], extra_dirs: list[Path] | None = None) -> list[tuple[Path, Profile | Exception]]:
    """Validate profile files against the search path (they may extend any known profile, or each other).

    Returns each file with its profile, or the :class:`ProfileError` that says what is wrong with it.
    """
    raw = _raw_profiles(profile_search_path(extra_dirs))
    results: list[tuple[Path, Profile | Exception]] = []
    named: list[tuple[Path, str]] = []
    seen: dict[tuple[Path, str], Path] = {}
    for path in files:
        try:
            name, data = _read_raw(path)
            key = (path.resolve().parent, name)
            if key in seen:
                raise ProfileError(f"two profiles named {name!r} in one folder: {seen[key]} and {path}")
            seen[key] = path
        except ProfileError as exc:
            results.append((path, exc))
            continue
        raw[name] = (data, str(path), "dir")
        named.append((path, name))
    for path, name in named:
        try:
            if raw[name][1] != str(path):
                raise ProfileError(f"{path}: its name {name!r} is taken by {raw[name][1]}")
            results.append((path, _build(name, raw)))
        except ProfileError as exc:
            results.append((path, exc))
    order = {p: i for i, p in enumerate(files)}
    return sorted(results, key=lambda r: order[r[0]])


def load_profile_file(path: Path, extra_dirs: list[Path] | None = None) -> Profile:
    """One profile file, resolved against the search path; raises its :class:`ProfileError`."""
    [(_, result)] = load_profile_files([path], extra_dirs)
    if isinstance(result, Exception):
        raise result
    return result


def resolved_table(name: str, extra_dirs: list[Path] | None = None) -> dict[str, Any]:
    """The fully merged TOML table of a profile (``extends`` applied and dropped), validated."""
    raw = _raw_profiles(profile_search_path(extra_dirs))
    if name not in raw:
        get_profile(name, extra_dirs)  # raises the error listing known desks
        name = name.lower()
    _build(name, raw)
    return _resolve(name, raw)


def dump_toml(data: dict[str, Any]) -> str:
    """A profile table as TOML text (tomli-w: every string escaped, control characters included)."""
    return tomli_w.dumps(data)
