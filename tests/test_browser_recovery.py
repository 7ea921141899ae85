"""The demo's hand-off in a real browser (Debian's chromium, Playwright, `ringfence serve --demo`): replay
19 July 2024, follow "Open a recovery campaign for the N silent hosts" to /recovery/new, open the campaign,
assign a host, mark it started and fixed, and watch the simulated host come back and be verified by its own
heartbeat.  Screenshots go to the test's tmp_path."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, DemoServer

pytestmark = [pytest.mark.slow, pytest.mark.extended]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
    srv = DemoServer(tmp_path_factory.mktemp("demo-recovery"))
    yield srv
    srv.stop()


def test_replay_hands_the_silent_hosts_to_a_campaign_that_brings_them_back(server: DemoServer,
                                                                           tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.set_default_timeout(30_000)
            page.goto(server.url + "/login")
            page.get_by_label("Operator token").fill(server.tokens["operator"])
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("#whoami")).to_have_text("demo-operator")

            # Replay, wait for the rollback card and its hand-off link.
            page.get_by_role("button", name="Replay 19 July 2024").click()
            expect(page.get_by_role("heading", name=re.compile("falcon-content@291"))).to_be_visible()
            expect(page.locator("#rollback")).to_be_visible(timeout=90_000)
            link = page.locator("#recovery-link")
            expect(link).to_be_visible(timeout=90_000)
            silent = int(re.sub(r"\D", "", page.locator("#rollback-silent strong").inner_text()))
            assert silent > 0
            link.click()

            # The form is served: the hosts the rollout left behind, the example runbooks.
            expect(page).to_have_url(re.compile(r"/recovery/new\?rollout=ro-"))
            expect(page.get_by_role("heading", name="Open a recovery campaign")).to_be_visible()
            deadline = time.monotonic() + 60
            while int(page.locator("#to-recover").inner_text().replace(",", "")) < silent:
                # a host counts once it has been silent for 20 demo minutes (20 s at ×60)
                assert time.monotonic() < deadline, page.locator("#to-recover").inner_text()
                time.sleep(2)
                page.reload()
            assert "runbooks:" in page.get_by_label(re.compile("Runbooks")).input_value()
            page.get_by_label("Why? (audit log)").fill("browser test: the hand-off")
            page.screenshot(path=str(tmp_path / "1-new.png"), full_page=True)
            page.locator("#create-campaign").click()

            # The campaign page: every silent host queued, burn-down per path, then one host by hand.
            expect(page).to_have_url(re.compile(r"/recovery/rc-"))
            expect(page.locator("#burn-by-path svg")).to_be_visible()
            expect(page.locator("tr[data-state=queued]").first).to_be_visible()
            page.get_by_label("Assign the next").fill("1")
            page.get_by_role("button", name="Assign").click()
            row = page.locator("tr[data-state=assigned]")
            expect(row).to_have_count(1)
            host_row = page.locator(f"#{row.get_attribute('id')}")
            host_row.locator("select").select_option("start")
            host_row.get_by_role("button", name="Mark").click()
            expect(host_row).to_have_attribute("data-state", "in_progress")
            host_row.locator("select").select_option("fixed")
            host_row.get_by_role("button", name="Mark").click()
            expect(host_row).to_have_attribute("data-state", "fixed")
            page.screenshot(path=str(tmp_path / "2-fixed.png"), full_page=True)

            # The simulated host boots again and reports; only its own heartbeat verifies it.
            deadline = time.monotonic() + 60
            while host_row.get_attribute("data-state") != "verified":
                assert time.monotonic() < deadline, host_row.get_attribute("data-state")
                time.sleep(2)
                page.reload()
            expect(page.locator("#paths")).to_be_visible()
            page.screenshot(path=str(tmp_path / "3-verified.png"), full_page=True)
        finally:
            browser.close()
    assert all((tmp_path / f).stat().st_size > 10_000 for f in ("1-new.png", "2-fixed.png", "3-verified.png"))
