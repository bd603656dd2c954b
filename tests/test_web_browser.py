"""The web surface in a real browser: Debian's chromium, driven by Playwright, against the bridge on the X32 simulator.

In CI (``CI`` set) a missing chromium or Playwright fails the test; elsewhere it skips.
Screenshots go to ``build/test-artifacts/`` (or ``$AILIVE_TEST_ARTIFACTS``).
"""
from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from ailive.consoles.faderlaw import held_db
from tests.conftest import wait_for
from tests.test_web import ROOT, running_bridge, stems  # noqa: F401  (stems is a fixture)

ARTIFACTS = Path(os.environ.get("AILIVE_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))
DESKTOP = {"width": 1280, "height": 600}
PHONE = {"width": 390, "height": 844}  # a current phone, portrait, in CSS pixels
#: Slow enough that a fader is still riding seconds after arm, so "it stopped" means something.
SLOW = {"slew_down_db_per_s": 1.5, "slew_up_db_per_s": 1.5}


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str:
    found = os.environ.get("AILIVE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        _missing("chromium is not installed (Debian package chromium; make setup installs it)")
    return str(found)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable)  # Debian's build, never a download
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Any, url: str, viewport: dict[str, int] = DESKTOP, **options: Any) -> tuple[Any, list[str]]:
    """A fresh page on ``url``, with every script error and console error collected."""
    page = await browser.new_page(viewport=viewport, **options)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(url)
    await until(page, "document.querySelectorAll('.strip').length === 8")
    return page, errors


async def until(page: Any, expression: str, timeout_s: float = 5.0) -> None:
    """Poll a JavaScript expression on the page until it is true.

    Playwright's ``wait_for_function`` evaluates strings inside the page,
    which the page's Content-Security-Policy (no eval) rightly refuses.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await page.evaluate(expression):
        if loop.time() > deadline:
            raise AssertionError(f"{expression} not true within {timeout_s} s")
        await asyncio.sleep(0.02)


async def updates(page: Any, count: int) -> None:
    """Wait until ``count`` more states have reached the page."""
    seq = int(await page.evaluate("document.body.dataset.seq || 0"))
    await until(page, f"Number(document.body.dataset.seq || 0) >= {seq + count}")


def fader_writes(desk: Any, channel: int) -> int:
    """Fader writes the simulated desk accepted on ``channel``."""
    return desk.stats.writes.get(desk.profile.fader.address_of(channel), 0)


def strip(page: Any, channel: int) -> Any:
    return page.locator(f'.strip[data-ch="{channel}"]')


async def test_the_page_loads_and_the_meters_move(x32_sim, stems, tmp_path, browser):  # noqa: F811
    from playwright.async_api import expect

    async with running_bridge(x32_sim, stems, tmp_path, **SLOW) as bridge:
        page, errors = await open_page(browser, bridge.url)
        names = await page.locator(".strip .name").all_inner_texts()
        assert names == [c.name for c in bridge.show.channels]
        for link in ("desk", "audio", "model"):
            await expect(page.locator(f"#link-{link}")).to_have_class("link ok")
        await expect(page.locator("#armed")).to_have_text("disarmed")

        kick = strip(page, 1)
        levels = set()
        for _ in range(6):
            await updates(page, 1)
            levels.add(await kick.get_attribute("data-level"))
        assert len(levels) > 2, levels  # the meter follows the audio
        assert all(-10.0 < float(level) < -6.0 for level in levels)  # the kick plays at -8 dBFS
        width = await kick.locator(".bar").evaluate("bar => bar.getBoundingClientRect().width / bar.parentElement.getBoundingClientRect().width")
        assert 0.8 < width < 0.95  # -8 dBFS on a -60..0 scale
        talkback = strip(page, 8)
        assert await talkback.locator('button[data-mode="auto"]').is_disabled()  # excluded in the show file
        assert await talkback.get_attribute("data-mode") == "excluded"

        await page.locator("#arm").click()
        await expect(page.locator("#armed")).to_have_text("ARMED")
        assert bridge.engine.state.armed
        await wait_for(lambda: x32_sim.fader_db(1) < -1.0, timeout_s=8)  # the hot kick comes down on the desk
        await expect(kick.locator(".target-db")).not_to_have_text("–")  # riding: the page shows where it aims
        await updates(page, 3)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "web-surface.png", full_page=True)
        assert errors == []


async def test_manual_on_the_page_stops_writes_to_that_fader(x32_sim, stems, tmp_path, browser):  # noqa: F811
    from playwright.async_api import expect

    async with running_bridge(x32_sim, stems, tmp_path, **SLOW) as bridge:
        page, errors = await open_page(browser, bridge.url)
        await page.locator("#arm").click()
        # bass and guitar play at the same level: the bridge rides both up alike, for seconds at this slew
        await wait_for(lambda: x32_sim.fader_db(3) > 0.5 and x32_sim.fader_db(4) > 0.5, timeout_s=8)

        gtr = strip(page, 4)
        await gtr.locator('button[data-mode="manual"]').click()
        await expect(page.locator("#message")).to_have_text("Ch 4 Gtr: manual.")
        await expect(gtr).to_have_attribute("data-mode", "manual")
        await expect(gtr.locator(".reason")).to_have_text("manual")
        await bridge.steps(3)  # a write sent just before the switch has landed
        writes, level = fader_writes(x32_sim, 4), x32_sim.fader_db(4)
        bass_writes, bass_level = fader_writes(x32_sim, 3), x32_sim.fader_db(3)

        await wait_for(lambda: x32_sim.fader_db(3) > bass_level + 1.5, timeout_s=8)  # the bass rides on ...
        assert fader_writes(x32_sim, 3) > bass_writes
        assert fader_writes(x32_sim, 4) == writes and x32_sim.fader_db(4) == level  # ... the guitar is left alone
        assert bridge.engine.state.channel(4).mode == "manual"
        assert errors == []


async def test_kill_asks_first_then_restores_the_snapshot(x32_sim, stems, tmp_path, browser):  # noqa: F811
    from playwright.async_api import expect

    async with running_bridge(x32_sim, stems, tmp_path, **SLOW) as bridge:
        page, errors = await open_page(browser, bridge.url)
        await page.locator("#arm").click()
        await wait_for(lambda: x32_sim.fader_db(1) < -1.0, timeout_s=8)
        dialog = page.locator("#kill-dialog")

        await page.locator("#kill").click()
        await expect(dialog).to_be_visible()
        await bridge.steps(3)
        assert bridge.engine.state.armed  # a click on KILL alone does nothing
        await page.locator("#kill-cancel").click()
        await expect(dialog).to_be_hidden()
        await page.locator("#kill").click()
        await page.keyboard.press("Escape")  # so does Escape
        await expect(dialog).to_be_hidden()
        await bridge.steps(3)
        assert bridge.engine.state.armed

        await page.locator("#kill").click()
        await page.locator("#kill-confirm").click()
        await expect(page.locator("#armed")).to_have_text("disarmed")
        await expect(page.locator("#message")).to_have_text(re.compile(r"^Killed: \d faders restored\.$"))
        law = bridge.show.profile.law
        snapshot = {ch: bridge.engine.state.channel(ch).snapshot_db for ch in bridge.show.desk_channels}
        assert all(math.isfinite(db) for db in snapshot.values())
        await wait_for(lambda: all(x32_sim.fader_db(ch) == held_db(law, db) for ch, db in snapshot.items()), timeout_s=3)
        assert x32_sim.fader_db(1) == pytest.approx(-0.01, abs=0.02)  # where the kick was at arm
        assert errors == []


async def test_a_phone_sized_screen(x32_sim, stems, tmp_path, browser):  # noqa: F811
    from playwright.async_api import expect

    async with running_bridge(x32_sim, stems, tmp_path) as bridge:
        page, errors = await open_page(browser, bridge.url, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0  # nothing sticks out sideways
        for button in ("#arm", "#disarm", "#kill"):
            box = await page.locator(button).bounding_box()
            assert box["height"] >= 44 and box["width"] >= 100 and box["y"] + box["height"] <= PHONE["height"], (button, box)
        mode = await strip(page, 7).locator('button[data-mode="manual"]').bounding_box()
        assert mode["height"] >= 40 and mode["width"] >= 80  # a thumb hits it
        await strip(page, 7).locator('button[data-mode="manual"]').tap()
        await expect(strip(page, 7)).to_have_attribute("data-mode", "manual")
        assert bridge.engine.state.channel(7).mode == "manual"
        await page.evaluate("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "web-surface-phone.png")
        assert errors == []


async def test_the_page_asks_for_the_token_and_says_when_the_bridge_is_gone(x32_sim, stems, tmp_path, browser):  # noqa: F811
    from playwright.async_api import expect

    async with running_bridge(x32_sim, stems, tmp_path, token="s3cret-foh") as bridge:
        page, _ = await open_page(browser, bridge.url)
        await expect(page.locator("#token-form")).to_be_visible()
        await page.locator("#arm").click()
        await expect(page.locator("#message")).to_contain_text("arm refused: unauthorised")
        await bridge.steps(3)
        assert not bridge.engine.state.armed and x32_sim.stats.writes == {}

        await page.locator("#token").fill("s3cret-foh")
        await page.locator("#token-form button").click()
        await expect(page.locator("#token-form")).to_be_hidden()
        await page.locator("#arm").click()
        await expect(page.locator("#armed")).to_have_text("ARMED")

        second, _ = await open_page(browser, bridge.url + "#token=s3cret-foh")  # a link with the token in it
        assert "s3cret" not in second.url  # taken out of the address bar at once
        await second.locator("#disarm").click()
        await expect(second.locator("#message")).to_have_text("Disarmed: every fader stays where it is.")
        assert not bridge.engine.state.armed
    await expect(page.locator("#banner")).to_contain_text("No connection to the bridge")
    await expect(page.locator("body")).to_have_class(re.compile(r"\boffline\b"))
