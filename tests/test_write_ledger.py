"""The write ledger on its own: which fader reports are ours, which show a write lost, which are foreign.

No sockets and no event loop: every time is a plain number handed in.
"""
from __future__ import annotations

from ailive.consoles.writes import MAX_RESENDS, MAX_UNCONFIRMED_STEPS, Verdict, WriteLedger

A, B = "/ch/01/mix/fader", "/ch/02/mix/fader"


def ledger_after(*steps: int, before: int = 100, address: str = A) -> WriteLedger:
    ledger = WriteLedger()
    for i, step in enumerate(steps):
        ledger.sent(address, step, before, now=float(i))
    return ledger


def test_the_step_we_sent_shown_back_is_ours_and_confirms_the_write():
    ledger = ledger_after(200)
    judged = ledger.judge(A, 200, answer=False)
    assert judged.verdict is Verdict.OURS and judged.confirmed
    assert ledger.pending_step(A) is None and ledger.stats.own_echoes == 1


def test_a_repeat_of_the_confirmed_step_is_still_ours():
    ledger = ledger_after(200)
    ledger.judge(A, 200, answer=True)
    assert ledger.judge(A, 200, answer=True).verdict is Verdict.OURS
    assert ledger.stats.own_echoes == 2


def test_a_pushed_level_we_never_sent_is_foreign_and_ends_the_chain():
    ledger = ledger_after(200)
    judged = ledger.judge(A, 150, answer=False)
    assert judged.verdict is Verdict.FOREIGN and judged.wholesale == 0
    assert ledger.pending_step(A) is None


def test_a_push_of_the_level_from_before_our_write_is_a_hand_not_a_lost_write():
    # Only our own poll's answer can show a write lost; a push is somebody's move.
    ledger = ledger_after(200, before=100)
    assert ledger.judge(A, 100, answer=False).verdict is Verdict.FOREIGN
    assert ledger.stats.resent == 0


def test_an_echo_of_an_earlier_write_over_a_slow_link_is_ours_and_keeps_the_latest_pending():
    ledger = ledger_after(200, 210, 220)
    judged = ledger.judge(A, 210, answer=False)
    assert judged.verdict is Verdict.OURS and not judged.confirmed
    assert ledger.pending_step(A) == 220
    assert ledger.judge(A, 220, answer=False).confirmed


def test_a_poll_answer_with_the_level_before_our_write_means_lost_and_is_resent():
    ledger = ledger_after(200, before=100)
    judged = ledger.judge(A, 100, answer=True, round_s=5.0)
    assert judged.verdict is Verdict.RESEND and judged.resend_step == 200
    assert ledger.stats.resent == 1 and ledger.pending_step(A) == 200


def test_a_poll_answer_with_an_overtaken_write_is_also_a_lost_write():
    ledger = ledger_after(200, 210, before=100)
    judged = ledger.judge(A, 200, answer=True, round_s=5.0)
    assert judged.verdict is Verdict.RESEND and judged.resend_step == 210


def test_resends_stop_after_the_limit_and_the_desk_level_then_counts_as_foreign():
    ledger = ledger_after(200, before=100)
    for _ in range(MAX_RESENDS):
        assert ledger.judge(A, 100, answer=True, round_s=5.0).verdict is Verdict.RESEND
    judged = ledger.judge(A, 100, answer=True, round_s=5.0)
    assert judged.verdict is Verdict.FOREIGN
    assert ledger.pending_step(A) is None and ledger.stats.resent == MAX_RESENDS


def test_a_resend_joins_no_chain_and_opens_no_crossing_window():
    ledger = WriteLedger()
    ledger.sent(A, 200, 100, now=0.0, resend=True)
    assert ledger.pending_step(A) is None
    assert not ledger.crossed(A, now=0.01, window_s=0.25)
    assert ledger.judge(A, 200, answer=False).verdict is Verdict.OURS  # still the step last sent


def test_a_write_onto_an_unknown_level_is_remembered_as_sent_but_cannot_be_told_lost():
    ledger = WriteLedger()
    ledger.sent(A, 200, None, now=0.0)
    assert ledger.pending_step(A) is None
    assert ledger.judge(A, 200, answer=True).verdict is Verdict.OURS


def test_one_contradicting_answer_is_a_hand_two_in_one_round_are_a_wholesale_change():
    ledger = WriteLedger()
    for address in (A, B):
        ledger.sent(address, 200, 100, now=0.0)
        ledger.judge(address, 200, answer=True)  # confirmed: only the last-sent step is remembered
    first = ledger.judge(A, 50, answer=True, round_s=1.0)
    assert first.verdict is Verdict.FOREIGN and first.wholesale == 0
    second = ledger.judge(B, 60, answer=True, round_s=1.0)
    assert second.verdict is Verdict.FOREIGN and second.wholesale == 2


def test_contradictions_from_different_poll_rounds_do_not_add_up():
    ledger = WriteLedger()
    for address in (A, B):
        ledger.sent(address, 200, 100, now=0.0)
        ledger.judge(address, 200, answer=True)
    assert ledger.judge(A, 50, answer=True, round_s=1.0).wholesale == 0
    assert ledger.judge(B, 60, answer=True, round_s=2.0).wholesale == 0
    assert list(ledger.contradictions) == [2.0]  # the older round is forgotten


def test_a_contradiction_outside_any_poll_round_is_not_counted():
    ledger = ledger_after(200)
    ledger.judge(A, 200, answer=True)
    assert ledger.judge(A, 50, answer=True, round_s=None).wholesale == 0
    assert ledger.contradictions == {}


def test_an_unconfirmed_write_that_the_answer_contradicts_ends_the_chain_and_counts_for_the_round():
    ledger = ledger_after(200, before=100)
    judged = ledger.judge(A, 50, answer=True, round_s=3.0)
    assert judged.verdict is Verdict.FOREIGN and ledger.pending_step(A) is None
    assert ledger.contradictions == {3.0: {A}}


def test_a_move_soon_after_our_decided_write_is_crossed_once():
    ledger = ledger_after(200)  # decided at now=0
    assert ledger.crossed(A, now=0.1, window_s=0.25)
    assert not ledger.crossed(A, now=0.1, window_s=0.25)  # the window closes with the answer
    assert ledger.stats.crossed == 1


def test_a_move_long_after_our_write_is_not_crossed():
    ledger = ledger_after(200)
    assert not ledger.crossed(A, now=1.0, window_s=0.25)


def test_the_desk_moving_on_forgets_our_last_write():
    ledger = ledger_after(200)
    ledger.judge(A, 200, answer=False)
    ledger.moved_on(A)
    assert ledger.judge(A, 200, answer=False).verdict is Verdict.FOREIGN


def test_forget_drops_everything_the_desk_is_read_again_for():
    ledger = ledger_after(200, before=100)
    ledger.judge(A, 50, answer=True, round_s=1.0)
    ledger.sent(B, 300, 100, now=0.0)
    ledger.forget()
    assert ledger.pending_step(B) is None and ledger.last_sent == {} and ledger.contradictions == {}


def test_the_remembered_earlier_steps_are_bounded():
    ledger = ledger_after(*range(1000, 1000 + MAX_UNCONFIRMED_STEPS + 10))
    pending = ledger.unconfirmed[A]
    assert len(pending.earlier_steps) == MAX_UNCONFIRMED_STEPS
    assert min(pending.earlier_steps) == 1000 + 9  # the oldest fell out
    assert ledger.judge(A, 1000, answer=False).verdict is Verdict.FOREIGN


def test_two_hands_among_many_written_faders_are_hands_most_of_them_changing_is_wholesale():
    ledger = WriteLedger()
    addresses = [f"/ch/{n:02d}/mix/fader" for n in range(1, 9)]
    for address in addresses:
        ledger.sent(address, 200, 100, now=0.0)
        ledger.judge(address, 200, answer=True)
    assert ledger.judge(addresses[0], 50, answer=True, round_s=1.0).wholesale == 0
    assert ledger.judge(addresses[1], 60, answer=True, round_s=1.0).wholesale == 0  # two engineers' hands
    judged = [ledger.judge(a, 70, answer=True, round_s=2.0).wholesale for a in addresses[2:8]]
    assert judged == [0, 0, 0, 4, 5, 6]  # from four of the eight faders written: half of what the bridge wrote


def test_a_fader_stood_down_is_never_resent():
    ledger = ledger_after(200)  # a write from 100 to 200, unconfirmed
    ledger.stand_down(A)
    assert ledger.judge(A, 100, answer=True).verdict is Verdict.FOREIGN  # the desk's level stands
