"""What the bridge's subscription means for the other apps on a desk, in words for ``ailive check``.

A WING keeps one subscriber console-wide and the last requester takes it: a
bridge that renews every 9 s takes it from Companion or an editor each time,
and their feedback stops until they take it back. No desk the bridge speaks
reports who holds a subscription, so the report says what the desk's rules
imply and what the show can do about it (``[desk] subscribe = false``).
"""
from __future__ import annotations

from typing import Any

from .profile import Profile


def subscription_report(profile: Profile) -> dict[str, Any]:
    """How the bridge follows the desk, and whom its subscription may take from; JSON-ready."""
    sub = profile.subscription
    if profile.feedback is not None:
        return {"mode": "feedback", "holder": None,
                "note": f"the desk feeds back {profile.feedback.clients} device(s); another device that talks to it "
                        "first gets the feedback instead"}
    if sub is None:
        return {"mode": "none", "holder": None, "note": "the desk has no subscription: polling follows it"}
    base = {"address": sub.address, "max_clients": sub.max_clients, "takeover": sub.takeover, "holder": None}
    period = f"every {profile.poll_period_s:g} s"
    if not profile.subscribe:
        return {**base, "mode": "poll-only",
                "note": f"poll-only (subscribe = false): the bridge leaves {sub.address} to other apps and reads the "
                        f"mapped faders and mutes {period}"}
    if sub.max_clients == 1 and sub.takeover == "last_wins":
        note = (f"{profile.name} keeps one subscriber console-wide and the last to ask takes it: 'ailive run' takes "
                f"{sub.address} every {sub.renew_s:g} s from whichever app holds it (Companion, an editor, a tablet "
                f"app), whose feedback stops until it takes it back; the desk does not say who holds it now. With "
                f"another app in use, set subscribe = false in [desk] (polling {period} instead)")
    else:
        note = (f"{sub.address} takes {sub.max_clients} clients; past that the desk refuses the bridge, which then "
                f"follows the desk by polling {period}; the desk does not say who holds them")
    return {**base, "mode": "subscribe", "note": note}
