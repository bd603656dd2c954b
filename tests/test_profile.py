"""Desk profiles: the built-in ones load, inheritance works, mistakes are named precisely."""
from pathlib import Path

import pytest

from ailive.consoles.errors import ProfileError, ProfileSchemaError
from ailive.consoles.faderlaw import X32Law
from ailive.consoles.profile import get_profile, load_profiles

BASE = """
schema = 1
name = "{name}"
vendor = "Test"
transport = "osc-udp"
port = 9000
channels = 8
models = ["T1"]

[identify]
queries = ["/id"]
model_arg = 0
name_arg = 0
firmware_arg = 0

[fader]
address = "{fader}"
type = "f"
law = "x32"

[mute]
address = "/strip/{{ch}}/mute"
type = "i"

[channel_name]
address = "/strip/{{ch}}/name"
type = "s"
"""


def write_profile(directory: Path, name: str, fader: str = "/strip/{ch}/fader", extra: str = "") -> Path:
    path = directory / f"{name}.toml"
    path.write_text(BASE.format(name=name, fader=fader) + extra)
    return path


def test_builtin_profiles():
    profiles = load_profiles()
    assert {"x32", "m32", "xair"} <= set(profiles)
    x32 = profiles["x32"]
    assert (x32.port, x32.channels) == (10023, 32)
    assert x32.subscription and x32.subscription.max_clients == 4 and x32.subscription.renew_s == 8.0
    assert x32.fader.address_of(1) == "/ch/01/mix/fader"
    assert x32.mute.address_of(32) == "/ch/32/mix/on" and x32.mute.muted_value == 0
    assert isinstance(x32.law, X32Law) and x32.law.rule == "int_1023_5"


def test_extends_changes_only_what_differs():
    xair = get_profile("xair")
    assert (xair.port, xair.channels) == (10024, 16)
    assert xair.subscription and xair.subscription.max_clients == 8
    assert xair.fader.address_of(16) == "/ch/16/mix/fader"  # inherited from x32
    assert xair.meters and xair.meters.decoder == "xair_int16"
    assert get_profile("m32").sim.model == "M32"


def test_write_table_holds_faders_only_unless_trim_is_allowed():
    x32 = get_profile("x32")
    assert x32.write_addresses([1, 2]) == {"/ch/01/mix/fader", "/ch/02/mix/fader"}
    assert "/ch/01/preamp/trim" in x32.write_addresses([1], allow_trim=True)
    for profile in load_profiles().values():
        channels = range(1, profile.channels + 1)
        faders = {profile.fader.address_of(ch) for ch in channels}
        others = {t.address_of(ch) for ch in channels for t in (profile.mute, profile.name_param)}
        assert profile.write_addresses(channels) == faders and not faders & others
        for address in faders:
            assert address.endswith(("fader", "fdr")) and "/on" not in address and "mute" not in address


def test_unknown_desk_lists_known_ones():
    with pytest.raises(ProfileError, match=r"unknown desk 'yamaha'.*x32"):
        get_profile("yamaha")


def test_user_profile_directory_overrides_and_extends(tmp_path):
    write_profile(tmp_path, "testdesk")
    (tmp_path / "bigdesk.toml").write_text('schema = 1\nname = "bigdesk"\nextends = "testdesk"\nchannels = 64\n')
    profiles = load_profiles([tmp_path])
    assert profiles["bigdesk"].channels == 64
    assert profiles["bigdesk"].fader.address_of(3) == "/strip/3/fader"


@pytest.mark.parametrize("fader,extra,key", [
    ("/strip/fader", "", "fader.address"),  # no {ch}
    ("/strip/{ch}/fader", "colour = 'red'\n", "colour"),  # unknown key at top level... lands in last table
    ("/strip/{ch}/fader", "\n[subscription]\naddress = '/sub'\nrenew_s = 12.0\nlease_s = 10.0\nmax_clients = 1\n", "subscription.renew_s"),
])
def test_schema_errors_name_file_and_key(tmp_path, fader, extra, key):
    path = write_profile(tmp_path, "broken", fader=fader, extra=extra)
    with pytest.raises(ProfileSchemaError) as info:
        load_profiles([tmp_path])
    assert info.value.path == str(path)
    assert info.value.key.endswith(key.split(".")[-1])


def test_unknown_law_is_refused(tmp_path):
    write_profile(tmp_path, "lawless")
    text = (tmp_path / "lawless.toml").read_text().replace('law = "x32"', 'law = "yamaha"')
    (tmp_path / "lawless.toml").write_text(text)
    with pytest.raises(ProfileSchemaError, match=r"fader.law: expected one of x32, db, got 'yamaha'"):
        load_profiles([tmp_path])


def test_extends_cycle_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('schema = 1\nname = "a"\nextends = "b"\n')
    (tmp_path / "b.toml").write_text('schema = 1\nname = "b"\nextends = "a"\n')
    with pytest.raises(ProfileError, match="cycle"):
        load_profiles([tmp_path])


def test_invalid_toml_is_one_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_text("name = [unclosed\n")
    with pytest.raises(ProfileSchemaError, match="valid TOML"):
        load_profiles([tmp_path])


def test_written_toml_escapes_control_characters_and_reads_back_the_same():
    import tomllib

    from ailive.consoles.profile import dump_toml

    table = {"description": "line\rbreak\x01bell\ttab \"quoted\" \\ back", "nested": {"/x y": {"args": ["a\nb"]}},
             "low": float("-inf")}
    text = dump_toml(table)
    assert "\r" not in text and "\x01" not in text
    assert tomllib.loads(text) == table
