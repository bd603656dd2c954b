"""The strict OSC codec: exact bytes out, garbage never gets through."""
import struct

import pytest
from hypothesis import given, settings, strategies as st
from pythonosc.osc_message import OscMessage as StockMessage

from ailive.consoles import osc
from ailive.consoles.errors import OscDecodeError
from tests.oscpeer import build


def test_fader_write_bytes_are_exact():
    data = osc.encode("/ch/01/mix/fader", "f", (0.75,))
    assert data == b"/ch/01/mix/fader\x00\x00\x00\x00,f\x00\x00" + struct.pack(">f", 0.75)


def test_query_is_address_and_empty_type_tags():
    assert osc.encode("/xinfo") == b"/xinfo\x00\x00,\x00\x00\x00"


def test_int_is_never_guessed_for_a_float_fader():
    # python-osc would send a bare 1 as ,i; a desk drops that for a fader.
    assert osc.encode("/ch/01/mix/fader", "f", (1,))[-8:] == b",f\x00\x00" + struct.pack(">f", 1.0)


@pytest.mark.parametrize("tags,args", [("i", (-3,)), ("s", ("Kick",)), ("ifs", (1, 0.5, "abc")), ("b", (b"\x01\x02\x03",))])
def test_bytes_match_python_osc(tags, args):
    ours = osc.encode("/x/y", tags, args)
    assert ours == build("/x/y", *zip(tags, args))
    assert list(StockMessage(ours).params) == list(args)


@given(
    address=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_/", min_size=1, max_size=40).map(lambda s: "/" + s),
    args=st.lists(st.one_of(
        st.integers(-(2**31), 2**31 - 1).map(lambda v: ("i", v)),
        st.floats(width=32, allow_nan=False).map(lambda v: ("f", v)),
        st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=30).map(lambda v: ("s", v)),
        st.binary(min_size=1, max_size=40).map(lambda v: ("b", v)),
    ), max_size=6),
)
def test_round_trip(address, args):
    tags = "".join(t for t, _ in args)
    values = tuple(v for _, v in args)
    message = osc.decode(osc.encode(address, tags, values))
    assert message == osc.OscMessage(address, tags, values)


@pytest.mark.parametrize("data", [
    b"",
    b"/ch",  # not padded
    b"/ch/01/mix/fader\x00\x00\x00\x00,f\x00\x00",  # float missing
    b"/ch/01/mix/fader\x00\x00\x00\x00,f\x00\x00\x3f\x40",  # float truncated
    b"/ch/01/mix/fader\x00\x00\x00\x00,q\x00\x00\x00\x00\x00\x00",  # unknown tag
    b"#bundle\x00" + b"\x00" * 8,
    b"noslash\x00,\x00\x00\x00",
    b"/a\x00\x00,s\x00\x00abcd",  # string without NUL
    b"/a\x00\x00,b\x00\x00\x00\x00\x00\x10abcd",  # blob longer than the datagram
    b"/a\x00\x00,i\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00",  # trailing bytes
    b"/\xff\xfe\x00,\x00\x00\x00",  # not ASCII
])
def test_garbage_is_rejected(data):
    with pytest.raises(OscDecodeError):
        osc.decode(data)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_decode_error(data):
    try:
        osc.decode(data)
    except OscDecodeError:
        pass


@given(st.binary(min_size=1, max_size=60))
def test_truncating_a_valid_message_is_rejected(blob):
    data = osc.encode("/meters/1", "b", (blob,))
    # A cut right after the address is a valid tagless message; every later cut is not.
    for cut in [c for c in range(4, len(data), 4) if c != 12]:
        with pytest.raises(OscDecodeError):
            osc.decode(data[:cut])


def test_encode_refuses_wrong_types():
    with pytest.raises(TypeError):
        osc.encode("/ch/01/mix/on", "i", (0.5,))
    with pytest.raises(TypeError):
        osc.encode("/ch/01/mix/on", "i", (True,))
    with pytest.raises(ValueError):
        osc.encode("no-slash")
