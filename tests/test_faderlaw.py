"""Fader laws: the vectors from the protocol notes, and properties on every segment."""
import math

import pytest
from hypothesis import given, strategies as st

from ailive.consoles.errors import ProfileError
from ailive.consoles.faderlaw import DbLaw, LinearDbLaw, X32Law, make_law

X32 = X32Law()
X32_ROUND = X32Law(rule="round")

# requested dB, f before quantization, step (int_1023_5), dB the desk holds, step with round()
VECTORS = [
    (0.0, 0.75, 767, -0.010, 767),
    (-10.0, 0.5, 511, -10.039, 512),
    (-30.0, 0.25, 255, -30.117, 256),
    (-60.0, 0.0625, 63, -60.44, 64),
    (3.0, 0.825, 844, 3.00, 844),
    (-85.4, 0.00958, 9, -85.78, 10),
    (10.0, 1.0, 1023, 10.0, 1023),
]


@pytest.mark.parametrize("db,f,step,held_db,round_step", VECTORS)
def test_reference_vectors(db, f, step, held_db, round_step):
    value = X32.from_db(db)
    assert value == pytest.approx(f, abs=5e-5)
    assert X32.step_of(value) == step
    assert X32.to_db(X32.quantize(value)) == pytest.approx(held_db, abs=0.02)
    assert X32_ROUND.step_of(value) == round_step


def test_between_steps_lands_on_the_same_step_under_both_rules():
    assert X32.step_of(0.5003) == X32_ROUND.step_of(0.5003) == 512


@pytest.mark.parametrize("f,db", [(1.0, 10.0), (0.5, -10.0), (0.25, -30.0), (0.0625, -60.0), (1 / 480, -89.0)])
def test_segment_boundaries(f, db):
    assert X32.to_db(f) == pytest.approx(db)
    assert X32.from_db(db) == pytest.approx(f)


def test_off_and_clamping():
    assert X32.to_db(0.0) == -math.inf
    assert X32.from_db(-math.inf) == 0.0
    assert X32.from_db(-200.0) == 0.0
    assert X32.from_db(30.0) == 1.0
    assert X32.step_of(2.0) == 1023 and X32.step_of(-1.0) == 0
    with pytest.raises(ValueError):
        X32.from_db(math.nan)


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_x32_is_monotone(a, b):
    lo, hi = min(a, b), max(a, b)
    assert X32.to_db(lo) <= X32.to_db(hi)
    assert X32.step_of(lo) <= X32.step_of(hi)


@given(st.floats(-89.99, 10.0))
def test_x32_db_round_trip(db):
    assert X32.to_db(X32.from_db(db)) == pytest.approx(db, abs=1e-9)


@given(st.floats(0.0, 1.0))
def test_round_rule_holds_within_half_a_step(f):
    assert abs(X32_ROUND.quantize(f) - f) <= 0.5 / 1023 + 1e-12


@given(st.floats(0.0, 1.0))
def test_default_rule_holds_within_one_step(f):
    assert abs(X32.quantize(f) - f) <= 1.0 / 1023 + 1e-12


@given(st.floats(0.0, 1.0))
def test_quantize_is_idempotent_and_survives_float32(f):
    import struct

    held = X32.quantize(f)
    assert X32.quantize(held) == held
    as_float32 = struct.unpack(">f", struct.pack(">f", held))[0]
    assert X32.step_of(as_float32) == X32.step_of(held)


def test_db_law_for_wing_like_desks():
    law = DbLaw(min_db=-144.0, max_db=10.0, step_db=0.1)
    assert law.to_db(-144.0) == -math.inf
    assert law.from_db(-math.inf) == -144.0
    assert law.from_db(20.0) == 10.0
    assert law.quantize(-3.04) == pytest.approx(-3.0)
    assert law.step_of(-3.04) == law.step_of(-2.96)


@given(st.floats(-150.0, 10.0), st.floats(-150.0, 10.0))
def test_db_law_is_monotone(a, b):
    law = DbLaw(min_db=-150.0, max_db=10.0, step_db=0.25)
    lo, hi = min(a, b), max(a, b)
    assert law.quantize(lo) <= law.quantize(hi)
    assert abs(law.quantize(lo) - lo) <= 0.125 + 1e-9


def test_trim_law_has_145_values():
    trim = LinearDbLaw(-18.0, 18.0, 0.25)
    values = {trim.step_of(i / 1000) for i in range(1001)}
    assert values == set(range(145))
    assert trim.from_db(0.0) == 0.5


def test_unknown_law_or_rule_is_a_profile_error():
    with pytest.raises(ProfileError, match="unknown fader law"):
        make_law("yamaha")
    with pytest.raises(ProfileError, match="quantize rule"):
        X32Law(rule="truncate")


@given(st.floats(-100.0, 20.0), st.floats(-90.0, 10.0), st.floats(0.5, 20.0))
def test_held_db_within_stays_inside_the_range(db, low, width):
    from ailive.consoles.faderlaw import held_db_within

    high = min(low + width, 10.0)
    for law in (X32, X32_ROUND, DbLaw(-144.0, 10.0, 0.25)):
        held = held_db_within(law, db, low, high)
        assert low - 1e-9 <= held <= high + 1e-9
        assert law.to_db(law.quantize(law.from_db(held))) == pytest.approx(held, abs=1e-9)
