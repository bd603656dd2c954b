"""What real desks do, as their public documentation says, against the driver and the simulators.

Each test pins one protocol fact of docs/conformance.md: model families, the
WING's answer shapes, echoes over a slow link, DiGiCo's query form and query
budget, the WING's one subscription, X-Air's missing trim and meter ids.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from ailive.bridge.show import load_show
from ailive.consoles.driver import OscDeskDriver
from ailive.consoles.errors import DeskIdentityError, ProfileError, ShowFileError
from ailive.consoles.events import DeskLost, FaderMoved, MuteChanged
from ailive.consoles.pacer import PollRota, QueryPacer
from ailive.consoles.profile import Profile, get_profile
from ailive.consoles.sim import DeskSimulator
from tests.conftest import wait_for
from tests.oscpeer import OscPeer
from tests.test_cli import EXAMPLE, ailive, assert_one_line_error, assert_the_hot_channel_came_down, make_stems

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "conformance.md"


def answering_as(profile: Profile, model: str) -> Profile:
    """The profile of a simulator that reports ``model``."""
    return replace(profile, sim=replace(profile.sim, model=model))


def driver_for(sim: DeskSimulator, channels=(1, 2, 3, 4), profile: Profile | None = None, **options) -> OscDeskDriver:
    return OscDeskDriver(profile or sim.profile, "127.0.0.1", sim.port, list(channels), reply_timeout_s=0.3, **options)


# ----- 1. model families -------------------------------------------------------------------------


@pytest.mark.parametrize("desk,model", [
    ("wing", "wing-compact"), ("wing", "wing-rack"), ("wing", "wing-bk"), ("wing", "wing"), ("wing", "ngc-full"),
    ("wing", "WING-RACK"), ("x32", "X32RACK"), ("x32", "X32C"), ("x32", "X32Producer"), ("x32", "M32R"),
    ("m32", "M32C"), ("xair", "XR18"), ("xair", "MR18"), ("digico", "S21 S21-0001"), ("digico", "SD9"),
])
async def test_every_member_of_a_family_is_accepted(desk, model):
    async with DeskSimulator(answering_as(get_profile(desk), model), port=0) as sim:
        async with driver_for(sim, profile=get_profile(desk)) as driver:
            assert driver.identity is not None and driver.identity.model == model


@pytest.mark.parametrize("desk,model", [("xair", "X32"), ("x32", "XR18"), ("wing", "X32"), ("digico", "Yamaha CL5")])
async def test_a_desk_of_another_family_is_refused(desk, model):
    async with DeskSimulator(answering_as(get_profile(desk), model), port=0) as sim:
        with pytest.raises(DeskIdentityError, match=f"says it is a '{model}'"):
            await driver_for(sim, profile=get_profile(desk)).connect()


# ----- 2. the WING's answers: ,sfi for an int node, ,sff for the fader on the desk's own curve ------


@pytest.fixture
async def wing_sim():
    async with DeskSimulator(get_profile("wing"), port=0) as desk:
        yield desk


async def test_wing_int_node_answers_text_raw_float_and_int(wing_sim):
    wing_sim.set_mute(1, True)
    async with OscPeer(wing_sim.address) as client:
        reply = await client.ask("/ch/1/mute")
        assert (reply.address, reply.params) == ("/ch/1/mute", ["1", 1.0, 1])
        assert "".join(t for t in reply.dgram.split(b",", 1)[1][:4].decode() if t.isalpha()) == "sfi"


async def test_wing_fader_position_follows_the_fader_curve_not_the_db_scale(wing_sim):
    async with OscPeer(wing_sim.address) as client:
        for db, position in ((0.0, 0.75), (-10.0, 0.5), (-30.0, 0.25), (10.0, 1.0)):
            client.send("/ch/2/fdr", ("f", db))
            await wait_for(lambda: wing_sim.fader_db(2) == db)
            text, raw, value = (await client.ask("/ch/2/fdr")).params
            assert (text, value) == (f"{db:.1f}", db) and raw == pytest.approx(position, abs=1e-6)


async def test_wing_mute_is_read_by_a_poll_when_another_app_holds_the_subscription(wing_sim):
    events: list = []
    async with driver_for(wing_sim, poll_period_s=0.1) as driver, OscPeer(wing_sim.address) as editor:
        driver.add_listener(events.append)
        editor.send("/*S")
        await wait_for(lambda: wing_sim.subscribers() == [editor.address])
        wing_sim.set_mute(3, True)
        await wait_for(lambda: any(isinstance(e, MuteChanged) and e.channel == 3 and e.muted for e in events), timeout_s=2.0)
        assert driver.view[3].muted is True and driver.stats.rejected == 0


# ----- 3. the simulator echoes a client's own sets, with the delay fault -----------------------------


@pytest.mark.parametrize("mode,expected", [("none", []), ("changes", [0.5, 0.25]), ("all", [0.5, 0.5, 0.25])])
async def test_echo_modes(mode, expected):
    async with DeskSimulator(get_profile("xair"), port=0, echo=mode) as sim, OscPeer(sim.address) as client:
        sim.faults.delay_s = 0.08
        client.send("/xremote")
        await wait_for(lambda: sim.subscribers() == [client.address])
        for value in (0.5, 0.5, 0.25):
            client.send("/ch/01/mix/fader", ("f", value))
        echoed = [m.params[0] for m in await until_status(client) if m.address == "/ch/01/mix/fader"]
        assert [round(v, 2) for v in echoed] == expected and sim.stats.echoed == len(expected)


async def until_status(client: OscPeer) -> list:
    """Everything the desk sends up to its answer to a /status sent now (one path: it comes after the rest)."""
    client.send("/status")
    got = [await client.receive()]
    while got[-1].address != "/status":
        got.append(await client.receive())
    return got[:-1]


async def test_echo_mode_is_checked_and_defaults_to_the_profile():
    assert DeskSimulator(get_profile("digico")).echo == "changes" and DeskSimulator(get_profile("x32")).echo == "none"
    with pytest.raises(ValueError, match="echo must be one of none, changes, all"):
        DeskSimulator(get_profile("x32"), echo="sometimes")


# ----- 4. DiGiCo: the liveness probe is a query ------------------------------------------------------


async def test_digico_liveness_probe_is_answered_without_polls():
    profile = replace(get_profile("digico"), liveness_timeout_s=0.6)
    events: list = []
    async with DeskSimulator(profile, port=0) as sim:
        async with driver_for(sim, profile=profile, poll_period_s=30.0) as driver:
            driver.add_listener(events.append)
            probes = lambda: [a for _, a in sim.stats.query_log if a == "/Console/Name"]  # noqa: E731
            await wait_for(lambda: len(probes()) >= 3, timeout_s=3.0)  # identify, then two probes
            assert driver.connected and not [e for e in events if isinstance(e, DeskLost)]
            assert sim.stats.unknown_address == 0 and sim.stats.rejected == 0


async def test_digico_bare_address_is_never_answered():
    async with DeskSimulator(get_profile("digico"), port=0) as sim, OscPeer(sim.address) as client:
        client.send("/Console/Name")
        client.send("/Input_Channels/1/fader")
        assert await client.collect(0.1) == []
        assert sim.stats.queries == 0


# ----- 5. DiGiCo: queries paced, ridden channels first ----------------------------------------------


async def test_pacer_sends_in_order_never_closer_than_its_gap():
    loop = asyncio.get_running_loop()
    pacer, sent = QueryPacer(50.0), []
    for index in range(5):
        pacer.submit(loop, lambda index=index: sent.append((index, loop.time())) is None)
    pacer.submit(loop, lambda: False)  # withdrawn: spends no turn
    await pacer.turn(loop)
    sent.append((5, loop.time()))
    assert [i for i, _ in sent] == [0, 1, 2, 3, 4, 5]
    assert all(b - a >= 0.0199 for (_, a), (_, b) in zip(sent, sent[1:]))
    assert pacer.per_period(0.25) == 12 and QueryPacer(0.0).per_period(0.25) > 10_000


def test_poll_rota_asks_ridden_addresses_every_round():
    rota = PollRota(["r1", "r2"], ["a", "b", "c", "d", "e"])
    assert [rota.round(4) for _ in range(3)] == [["r1", "r2", "a", "b"], ["r1", "r2", "c", "d"], ["r1", "r2", "e", "a"]]
    assert PollRota(["r1", "r2", "r3"], ["a"]).round(2) == ["r1", "r2"]


@pytest.mark.parametrize("budget", [1, 2, 3, 6, 12])
def test_poll_rota_keeps_a_share_for_unridden_addresses_when_the_ridden_fill_the_budget(budget):
    ridden, others = [f"r{i}" for i in range(40)], [f"o{i}" for i in range(6)]
    rota = PollRota(ridden, others)
    rounds = [rota.round(budget) for _ in range(40)]
    assert all(len(r) <= budget for r in rounds)  # the desk's query budget is never exceeded
    asked = [a for r in rounds for a in r]
    assert set(others) <= set(asked)  # every unridden fader and mute is asked, within a few rounds
    unridden = sum(a in others for a in asked)
    assert unridden * 4 >= len(asked) - budget  # a quarter of the queries, give or take one round's rounding
    assert (len(asked) - unridden) * 4 >= 3 * (len(asked) - budget)  # and the ridden keep the rest


def test_digico_profile_has_a_query_budget():
    assert get_profile("digico").max_queries_per_s == 50.0
    assert get_profile("x32").max_queries_per_s == 0.0


async def test_digico_queries_stay_within_the_budget_ridden_channels_first():
    budget = 200.0
    profile = replace(get_profile("digico"), max_queries_per_s=budget)
    channels = list(range(1, 33))
    async with DeskSimulator(profile, port=0, channels=32) as sim:
        async with driver_for(sim, channels, profile, poll_period_s=0.25, ridden=[7, 20]):
            swept = len(channels) * 3 + 2  # two identification queries, then fader, mute, name of each channel
            await wait_for(lambda: sim.stats.queries >= swept + 150, timeout_s=10.0)
        log = list(sim.stats.query_log)
    times = [t for t, _ in log]
    assert len(log) - 1 <= budget * (times[-1] - times[0]) + 2, "more queries than the budget allows"
    first_faders = [a for _, a in log if a.endswith("/fader")][:2]
    assert first_faders == ["/Input_Channels/7/fader", "/Input_Channels/20/fader"]
    polls = [a for _, a in log[swept:] if a.endswith("/fader")]
    assert polls[:2] == ["/Input_Channels/7/fader", "/Input_Channels/20/fader"]
    assert polls.count("/Input_Channels/7/fader") >= max(polls.count(f"/Input_Channels/{c}/fader") for c in channels)


# ----- 6. the WING's one subscription: poll only -----------------------------------------------------


async def test_wing_poll_only_leaves_the_subscription_and_still_follows_the_desk():
    wing = get_profile("wing")
    fast = replace(wing, subscribe=False, subscription=replace(wing.subscription, renew_s=0.1, lease_s=5.0))
    events: list = []
    async with DeskSimulator(fast, port=0) as sim, OscPeer(sim.address) as editor:
        editor.send("/*S")
        await wait_for(lambda: sim.subscribers() == [editor.address])
        async with driver_for(sim, profile=fast, poll_period_s=0.1) as driver:
            driver.add_listener(events.append)
            assert not driver.subscribes
            sim.move_fader_db(2, -25.0)
            sim.set_mute(4, True)
            await wait_for(lambda: any(isinstance(e, FaderMoved) and e.channel == 2 for e in events)
                           and any(isinstance(e, MuteChanged) and e.channel == 4 for e in events), timeout_s=2.0)
            polled = sim.stats.queries
            await wait_for(lambda: sim.stats.queries >= polled + 24, timeout_s=3.0)  # three more poll rounds
        assert sim.subscribers() == [editor.address] and sim.stats.taken_over == 0


def write_show(path: Path, desk: str, extra: str) -> Path:
    path.write_text(f'[desk]\nprofile = "{desk}"\nhost = "127.0.0.1"\n{extra}\n'
                    '[[channel]]\nport = "system:capture_1"\ndesk = 1\n')
    return path


def test_show_file_turns_the_subscription_off(tmp_path):
    show = load_show(write_show(tmp_path / "gig.toml", "wing", "subscribe = false"))
    assert not show.profile.subscribe and not OscDeskDriver.for_show(show).subscribes
    assert OscDeskDriver.for_show(load_show(write_show(tmp_path / "on.toml", "wing", ""))).subscribes
    with pytest.raises(ShowFileError, match=r"desk\.poll_period_s: expected a period > 0"):
        load_show(write_show(tmp_path / "bad.toml", "x32", "subscribe = false\npoll_period_s = 0"))


# ----- 7. X-Air: no input trim, meter ids --------------------------------------------------------


def test_xair_has_no_trim_and_refuses_allow_trim(tmp_path):
    assert get_profile("xair").trim is None and get_profile("x32").trim is not None
    with pytest.raises(ProfileError, match="xair has no input trim"):
        OscDeskDriver(get_profile("xair"), "127.0.0.1", 10024, [1], allow_trim=True)
    with pytest.raises(ShowFileError, match=r"desk\.allow_trim: expected false: xair has no input trim"):
        load_show(write_show(tmp_path / "xair.toml", "xair", "allow_trim = true"))
    assert_one_line_error(ailive("check", str(tmp_path / "xair.toml")), r"allow_trim: expected false: xair has no input trim")


async def test_xair_simulator_knows_no_channel_trim_and_reads_the_meter_int_as_an_id():
    async with DeskSimulator(get_profile("xair"), port=0) as sim, OscPeer(sim.address) as client:
        client.send("/ch/01/preamp/trim", ("f", 0.6))
        client.send("/meters", ("s", "/meters/1"), ("i", 8))
        await client.ask("/status")
        assert sim.stats.unknown_address == 1
        assert sim._meter_leases[client.address][1] == pytest.approx(0.05)  # 50 ms, whatever the id
    async with DeskSimulator(get_profile("x32"), port=0) as sim, OscPeer(sim.address) as client:
        client.send("/meters", ("s", "/meters/1"), ("i", 8))
        await client.ask("/status")
        assert sim._meter_leases[client.address][1] == pytest.approx(0.4)  # the X32's time factor: 8 x 50 ms


# ----- 8. the conformance table ----------------------------------------------------------------------


def test_conformance_table_and_profiles_mark_each_fact():
    text = DOC.read_text()
    for word in ("hardware", "docs", "guess"):
        assert f"| {word} |" in text
    for name in ("x32", "xair", "wing", "digico"):
        source = Path(get_profile(name).source).read_text()
        assert "[docs]" in source and "[guess]" in source, name
        assert f"`{name}.toml`" in text, name


# ----- a WING Compact through the command line ---------------------------------------------------


def test_a_wing_compact_passes_check_and_run(tmp_path):
    from tests.test_cli import RunningSim

    sim = RunningSim("wing")
    try:
        show = EXAMPLE.parent / "wing-demo.toml"
        report = json.loads(ailive("check", str(show), "--desk", f"127.0.0.1:{sim.port}", "--json").stdout)
        assert report["model"] == "wing-compact" and report["problems"] == []
        assert report["subscription"]["mode"] == "subscribe" and report["subscription"]["takeover"] == "last_wins"
        assert [c["muted"] for c in report["channels"]] == [False] * len(report["channels"])
        text = ailive("check", str(show), "--desk", f"127.0.0.1:{sim.port}")
        assert text.returncode == 0 and "wing-compact" in text.stdout and "subscribe = false" in text.stdout
        stems = make_stems(tmp_path / "stems", seconds=4.0)
        result = ailive("run", str(show), "--source", str(stems), "--desk", f"127.0.0.1:{sim.port}", "--arm",
                        "--arm-after", "0.2", "--headless", "--journal", str(tmp_path / "j"), timeout=60)
        assert result.returncode == 0, result.stderr
        assert "ARMED" in result.stdout
        after = json.loads(ailive("check", str(show), "--desk", f"127.0.0.1:{sim.port}", "--json").stdout)
        assert_the_hot_channel_came_down({c["desk_channel"]: c["fader_db"] for c in after["channels"]})
    finally:
        sim.stop()
