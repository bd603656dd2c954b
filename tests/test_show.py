"""Show files: the examples validate; every mistake names file, key, expectation and value."""
from pathlib import Path

import pytest

from ailive.bridge.show import load_show
from ailive.consoles.errors import ShowFileError
from ailive.consoles.show import DeskAddress, parse_address

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

MINIMAL = """
[desk]
profile = "x32"
host = "10.0.0.5"

[[channel]]
port = "system:capture_1"
desk = 1
"""


def test_example_show_loads():
    show = load_show(EXAMPLES / "x32-demo.toml")
    assert show.profile.name == "x32"
    assert show.desk == DeskAddress("127.0.0.1", 10023)
    assert [c.desk_channel for c in show.channels] == list(range(1, 9))
    assert show.channels[7].mode == "excluded"
    assert show.channels[4].group == show.channels[5].group == "keys"
    assert show.policy.slew_down_db_per_s > show.policy.slew_up_db_per_s


def test_defaults(tmp_path):
    path = tmp_path / "gig.toml"
    path.write_text(MINIMAL)
    show = load_show(path)
    assert show.name == "gig"
    assert show.desk.port == 10023
    assert show.channels[0].mode == "auto" and show.channels[0].name == "Ch 1"
    assert not show.mqtt.enabled and not show.allow_trim


@pytest.mark.parametrize("edit,key,expected", [
    (lambda t: t.replace('profile = "x32"', 'profile = "yamaha"'), "desk.profile", "known desk profile"),
    (lambda t: t.replace("desk = 1", "desk = 33"), "channel[0].desk", "desk channel 1..32"),
    (lambda t: t.replace("desk = 1", 'desk = "one"'), "channel[0].desk", "desk channel"),
    (lambda t: t + 'mode = "atuo"\n', "channel[0].mode", "one of auto, manual, excluded"),
    (lambda t: t + "colour = 1\n", "channel[0].colour", "no such key"),
    (lambda t: t.replace('host = "10.0.0.5"', ""), "desk.host", "required"),
    (lambda t: t + '\n[[channel]]\nport = "system:capture_2"\ndesk = 1\n', "channel[1].desk", "not already mapped by channel[0]"),
    (lambda t: t + '\n[[channel]]\nport = "system:capture_1"\ndesk = 2\n', "channel[1].port", "not already mapped"),
    (lambda t: t + "\n[policy]\nwindow_db = -3\n", "policy.window_db", "0..40"),
    (lambda t: t + "\n[policy]\nslew_up = 3\n", "policy.slew_up", "no such key"),
    (lambda t: t + "\n[mqtt]\nport = 70000\n", "mqtt.port", "1..65535"),
    (lambda t: t.replace("[[channel]]\nport = \"system:capture_1\"\ndesk = 1\n", ""), "channel", "at least one"),
])
def test_errors_are_precise(tmp_path, edit, key, expected):
    path = tmp_path / "show.toml"
    path.write_text(edit(MINIMAL))
    with pytest.raises(ShowFileError) as info:
        load_show(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}: expected"), message
    assert expected in message, message
    assert "\n" not in message


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ShowFileError, match="existing file"):
        load_show(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[desk\n")
    with pytest.raises(ShowFileError, match="valid TOML"):
        load_show(tmp_path / "bad.toml")


@pytest.mark.parametrize("text,expected", [
    ("10.0.0.5", DeskAddress("10.0.0.5", 10023)),
    ("10.0.0.5:10024", DeskAddress("10.0.0.5", 10024)),
    ("[::1]:9000", DeskAddress("::1", 9000)),
    ("desk.local", DeskAddress("desk.local", 10023)),
])
def test_parse_address(text, expected):
    assert parse_address(text, 10023) == expected


@pytest.mark.parametrize("text", ["", ":10023", "host:0", "host:99999", "host:abc"])
def test_parse_address_refuses(text):
    with pytest.raises(ValueError):
        parse_address(text, 10023)
