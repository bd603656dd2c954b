"""Which fader reports are our own writes, which show a write was lost, and which are somebody else's.

The desk answers over a network that loses, duplicates and delays
datagrams, and it may be slow to answer at all. A level it reports for a
fader is one of: our write shown back (an echo, or a poll answering it);
an answer to our poll that still holds the level from before our write
(the write was lost: send it again, a few times at most); or a move that
is not ours (a hand, a scene recall). Several faders in one round of polls
contradicting our writes mean the desk changed wholesale behind us.

This is the delicate part of the desk link, so it is a pure object: no
sockets, no event loop; every time it needs is passed in as ``now``, and
every fader is named by its address. The driver asks it for a verdict on
each report and acts on it.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

#: How often a write the desk's answers show was lost is sent again before the
#: desk's level counts as somebody else's (a desk that refuses our writes).
MAX_RESENDS = 3
#: Earlier unconfirmed writes remembered per fader (a desk that is slow to answer).
MAX_UNCONFIRMED_STEPS = 64
#: Faders whose answers to one round of polls all contradict our writes before the desk counts as changed wholesale.
WHOLESALE_CHANGE_FADERS = 2


class Verdict(enum.Enum):
    OURS = "ours"  # one of our writes shown back: nothing moved
    RESEND = "resend"  # our poll shows the level from before our write: it was lost, send it again
    FOREIGN = "foreign"  # somebody else's level (or ours no longer traceable): believe the desk


@dataclass(frozen=True)
class Judgement:
    """The ledger's answer about one fader report."""

    verdict: Verdict
    resend_step: int | None = None  # the step to send again (RESEND)
    confirmed: bool = False  # the report shows our latest write: nothing of ours is unconfirmed any more
    wholesale: int = 0  # faders contradicted in this poll round, once that reaches WHOLESALE_CHANGE_FADERS


@dataclass
class Unconfirmed:
    """Fader writes the desk has not yet shown back, and so the levels it may still hold if they were lost."""

    before_step: int  # what the desk held before the first of them
    sent_step: int  # the latest
    earlier_steps: frozenset[int] = frozenset()  # the ones before it, lost or overtaken
    resends: int = 0


@dataclass
class LedgerStats:
    own_echoes: int = 0
    resent: int = 0  # writes sent again because the desk still showed the value from before them
    crossed: int = 0  # external moves one of our writes may have crossed on the network


@dataclass
class WriteLedger:
    """Per fader: the step last sent, the unconfirmed chain, when the bridge last decided a write, and
    which faders each poll round showed changed behind us."""

    max_resends: int = MAX_RESENDS
    wholesale_faders: int = WHOLESALE_CHANGE_FADERS
    stats: LedgerStats = field(default_factory=LedgerStats)
    last_sent: dict[str, int] = field(default_factory=dict)
    unconfirmed: dict[str, Unconfirmed] = field(default_factory=dict)
    decided_at: dict[str, float] = field(default_factory=dict)  # writes the bridge chose (not resends)
    contradictions: dict[float, set[str]] = field(default_factory=dict)  # poll round -> faders it showed changed

    def sent(self, address: str, step: int, before_step: int | None, now: float, *, resend: bool = False) -> None:
        """Record a write. A resend (a lost write again, a hand's level sent back) is no new decision:
        it joins no unconfirmed chain and opens no crossing window. ``before_step`` is the level the
        desk was last seen holding (None when unknown: nothing can be told lost then)."""
        if not resend:
            self._remember_unconfirmed(address, before_step, step)
            self.decided_at[address] = now
        self.last_sent[address] = step

    def _remember_unconfirmed(self, address: str, before_step: int | None, sent_step: int) -> None:
        prior = self.unconfirmed.get(address)
        if prior is not None:
            earlier = sorted(prior.earlier_steps | {prior.sent_step})[-MAX_UNCONFIRMED_STEPS:]
            self.unconfirmed[address] = Unconfirmed(prior.before_step, sent_step, frozenset(earlier))
        elif before_step is not None:
            self.unconfirmed[address] = Unconfirmed(before_step, sent_step)

    def judge(self, address: str, step: int, *, answer: bool, round_s: float | None = None) -> Judgement:
        """Tell our own writes (echoed or polled back) and lost writes from somebody else's moves.

        ``answer``: the report answers our poll (only an answer can show a write
        lost; a pushed level is somebody else's unless it is one of the writes we
        still remember sending, whether or not the profile expects echoes).
        ``round_s``: when that poll round went out (contradictions are counted per round).
        """
        pending = self.unconfirmed.get(address)
        if pending is None:
            if self.last_sent.get(address) == step:
                self.stats.own_echoes += 1
                return Judgement(Verdict.OURS, confirmed=True)
            if answer and address in self.last_sent:
                return self._contradicted(address, round_s)
            return Judgement(Verdict.FOREIGN)
        if step == pending.sent_step:
            del self.unconfirmed[address]
            self.stats.own_echoes += 1
            return Judgement(Verdict.OURS, confirmed=True)
        if not answer:
            # An echo of one of our earlier writes, overtaken by later ones (a round trip longer than the write
            # interval), is ours whatever the profile says of echoes: some firmwares echo sets, some do not.
            if step in pending.earlier_steps:
                self.stats.own_echoes += 1
                return Judgement(Verdict.OURS)
            del self.unconfirmed[address]
            return Judgement(Verdict.FOREIGN)
        if (step == pending.before_step or step in pending.earlier_steps) and pending.resends < self.max_resends:
            pending.resends += 1
            self.stats.resent += 1
            return Judgement(Verdict.RESEND, resend_step=pending.sent_step)
        del self.unconfirmed[address]
        return self._contradicted(address, round_s)

    def _contradicted(self, address: str, round_s: float | None) -> Judgement:
        """An answer to our poll shows a level none of our writes left there (nor the level before them).

        One such fader is a hand. Several in one round of polls mean the desk's
        faders changed wholesale behind our back (a desk restart faster than the
        liveness timeout, or a scene recall nobody pushed).
        """
        if round_s is None:
            return Judgement(Verdict.FOREIGN)
        contradicted = self.contradictions.setdefault(round_s, set())
        contradicted.add(address)
        for old in [t for t in self.contradictions if t < round_s]:
            del self.contradictions[old]
        count = len(contradicted)
        # Two hands riding two faders in one poll round are hands: wholesale means most of what we wrote changed.
        written = len(set(self.last_sent) | contradicted)
        wholesale = count >= self.wholesale_faders and 2 * count >= written
        return Judgement(Verdict.FOREIGN, wholesale=count if wholesale else 0)

    def moved_on(self, address: str) -> None:
        """The desk shows a level that is not ours: our last write no longer stands there."""
        self.last_sent.pop(address, None)

    def crossed(self, address: str, now: float, window_s: float) -> bool:
        """Whether our last decided write went out less than ``window_s`` before this move (and so may have
        overwritten it at the desk). Asked once per move: the window closes with the answer."""
        crossed = now - self.decided_at.pop(address, -math.inf) < window_s
        self.stats.crossed += crossed
        return crossed

    def pending_step(self, address: str) -> int | None:
        """The latest write the desk has not shown back yet, if any."""
        pending = self.unconfirmed.get(address)
        return None if pending is None else pending.sent_step

    def stand_down(self, address: str) -> None:
        """Nothing of ours on this fader is to be sent again (muted, disarmed, not ridden any more): a level the
        desk shows from before a write of ours is the desk's from now on, never a lost write to resend."""
        self.unconfirmed.pop(address, None)

    def forget(self) -> None:
        """The desk is read again, whole: nothing we sent is known to stand there any more."""
        self.unconfirmed.clear()
        self.last_sent.clear()
        self.contradictions.clear()
