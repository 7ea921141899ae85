"""The dashboard in a real browser: Debian's chromium driven by Playwright against `ringfence serve --demo`.

One server (a subprocess on loopback with a small demo fleet) serves the whole scenario: sign in with the
keyboard, open the demo rollout, pause it as an operator, replay 19 July 2024 and watch the halt appear
without reloading, then check that a viewer gets no buttons.  Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("RINGFENCE_CHROMIUM", "/usr/bin/chromium"))


class DemoServer:
    """`ringfence serve --demo` on a free loopback port, with the tokens it printed."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGFENCE_")}
        env |= {"RINGFENCE_DATA_DIR": str(workdir / "var"), "RINGFENCE_LOG_LEVEL": "warning"}
        self.log_path = workdir / "server.log"
        self._log = self.log_path.open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "ringfence.cli", "serve", "--demo", "--demo-hosts", "500",
                                      "--demo-speed", "60", "--host", "127.0.0.1", "--port", str(self.port)],
                                     cwd=workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        output = self.log_path.read_text()
        assert self.proc.poll() is None, output
        self.tokens = dict(re.findall(r"demo\s+(\w+) token: (rf_\S+)", output))
        assert set(self.tokens) == {"viewer", "operator", "approver"}, output

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
    srv = DemoServer(tmp_path_factory.mktemp("demo"))
    yield srv
    srv.stop()


def _assert_marker_at_the_halt(page: Any) -> None:
    """The marker's line lies inside the chart, and the exposed line rises nowhere to its right."""
    x = float(page.locator("#halt-marker line").get_attribute("x1") or "nan")
    width = float(page.locator("svg.chart line.axis").first.get_attribute("x2") or "nan")  # the x axis
    assert 0 < x <= width, (x, width)
    drawn = page.locator("polyline.exposed").get_attribute("points") or ""
    points = [tuple(map(float, p.split(","))) for p in drawn.split()]
    rises = [bx for (ax, ay), (bx, by) in itertools.pairwise(points) if by < ay]  # y grows downwards in SVG
    assert rises and max(rises) <= x + 0.5, (max(rises), x)


def test_operator_replays_19_july_and_sees_the_halt_viewer_sees_no_buttons(server: DemoServer,
                                                                           tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)  # a loaded CI machine: assertions wait up to 15 s (the halt up to 60 s)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
            page.set_default_timeout(20_000)

            # Sign in with the keyboard only.
            page.goto(server.url + "/")
            expect(page).to_have_url(re.compile(r"/login\?next=/$"))
            expect(page.get_by_label("Operator token")).to_be_focused()
            page.keyboard.type(server.tokens["operator"])
            page.keyboard.press("Enter")
            expect(page.locator("#whoami")).to_have_text("demo-operator")
            page.keyboard.press("Tab")
            expect(page.locator(":focus")).to_have_text("Skip to content")
            expect(page.get_by_text(re.compile(r"Demo time .* ×60"))).to_be_visible()
            page.screenshot(path=str(tmp_path / "1-overview.png"), full_page=True)

            # Open the demo rollout (the good agent release) and pause it with a reason.
            page.get_by_role("link", name=re.compile(r"^ro-")).first.click()
            expect(page.get_by_role("heading", name=re.compile("falcon-sensor@"))).to_be_visible()
            expect(page.get_by_role("heading", name="Exposure over time")).to_be_visible()
            expect(page.locator("svg.chart")).to_be_visible()  # a few hosts are exposed within seconds
            page.get_by_text("Pause…").click()
            page.get_by_label("Why pause? (audit log)").fill("browser test: look before the replay")
            page.get_by_role("button", name="Pause this rollout").click()
            expect(page.locator("#live [data-state=paused]").first).to_be_visible()
            expect(page.locator("#status-message")).to_contain_text("paused by demo-operator (browser test")
            page.screenshot(path=str(tmp_path / "2-paused.png"), full_page=True)

            # Replay 19 July 2024: the halt in wave 0 appears without a reload, with its evidence.
            page.get_by_role("link", name="Overview").click()
            started = time.monotonic()
            page.get_by_role("button", name="Replay 19 July 2024").click()
            expect(page.get_by_role("heading", name=re.compile("falcon-content@291"))).to_be_visible()
            loaded = page.evaluate("performance.timeOrigin")
            halt = page.locator("#halt")
            expect(halt).to_be_visible(timeout=60_000)
            assert page.evaluate("performance.timeOrigin") == loaded  # shown by the live update, not a reload
            expect(halt).to_contain_text("in wave 0 (canary)")
            # gate v2's words: how many updated hosts fell silent against the comparable hosts reporting then
            expect(halt).to_contain_text(re.compile(r"\d+ of \d+ updated .* hosts stopped reporting without notice, "
                                                    r"\d+ of [\d,]+ comparable hosts reporting then did"))
            expect(halt).to_contain_text("8,500,000")
            hit = int(page.locator("#hosts-hit").inner_text().replace(",", ""))
            assert 0 < hit < 150, hit
            expect(page.locator("table.evidence")).to_contain_text("silent")
            # The buttons follow the new state too (no pause while it rolls back), again without a reload.
            expect(page.locator("#do-pause")).to_have_count(0)
            expect(page.locator("#actions")).not_to_have_attribute("data-state", "progressing")
            page.screenshot(path=str(tmp_path / "3-halted.png"), full_page=True)
            assert time.monotonic() - started < 60
            # The halt says it once, in words: no repeated "halted wave 0 (canary) … halted:", no "*" for the pool.
            expect(halt.locator(".halt-reason")).not_to_contain_text(re.compile(r"halted wave|halted:"))
            expect(halt.locator(".halt-reason")).not_to_contain_text(" * ")
            # The exposure chart marks the halt, at the halt: the same time as the alert, inside the axis, and
            # no host exposed after it.
            marker = page.locator("#halt-marker")
            expect(marker).to_be_visible()
            halted_when = re.search(r"Halted (.+?) in wave", halt.inner_text())
            assert halted_when, halt.inner_text()
            expect(marker).to_contain_text(f"halted {halted_when.group(1)}")
            _assert_marker_at_the_halt(page)

            # After the rollback the page says what is true, and hands the silent hosts to a recovery campaign.
            rollback = page.locator("#rollback")
            expect(rollback).to_be_visible(timeout=60_000)
            expect(rollback).to_contain_text(re.compile(r"desired state of all\s+[\d,]+\s+exposed hosts is their last known"))
            expect(rollback).not_to_contain_text("every exposed host is back")
            expect(page.locator("#rollback-silent")).to_contain_text(re.compile(r"[\d,]+\s+are silent and need recovery"),
                                                                     timeout=60_000)
            rollout_id = page.url.rstrip("/").rsplit("/", 1)[-1]
            link = page.locator("#recovery-link")
            expect(link).to_have_attribute("href", f"/recovery/new?rollout={rollout_id}")
            expect(link).to_contain_text("Open a recovery campaign")
            # The engine's own sentence in the decision log says the same (no "every exposed host is back").
            log = page.locator("ol.log")
            expect(log).to_contain_text(re.compile(r"rolled back: the desired state of every exposed host is its last "
                                                   r"known good version again.*[\d,]+ silent .*need recovery"),
                                        timeout=60_000)
            expect(log).not_to_contain_text("every exposed host is back")
            page.screenshot(path=str(tmp_path / "3b-rolled-back.png"), full_page=True)
            # Once the rollout has ended its time axis stops: a later reload draws the same span and marker.
            span = page.locator("#chart-desc").text_content()
            page.wait_for_timeout(3_000)  # three demo minutes at ×60
            page.reload()
            expect(page.locator("#chart-desc")).to_have_text(span or "")
            _assert_marker_at_the_halt(page)
            page.get_by_role("link", name="Overview").click()
            expect(page.locator("#demo-replay")).to_contain_text("is over")
            page.go_back()

            # A viewer sees the same pages and no action buttons at all.
            replay_url = page.url
            viewer = browser.new_context().new_page()
            viewer.goto(server.url + "/login")
            viewer.get_by_label("Operator token").fill(server.tokens["viewer"])
            viewer.get_by_role("button", name="Sign in").click()
            expect(viewer.locator("#whoami")).to_have_text("demo-viewer")
            expect(viewer.get_by_role("button", name="Replay 19 July 2024")).to_have_count(0)
            expect(viewer.get_by_text("Engage…")).to_have_count(0)
            viewer.goto(replay_url)
            expect(viewer.locator("#halt")).to_be_visible()
            expect(viewer.locator("#no-actions")).to_be_visible()
            expect(viewer.locator("form[action^='/ui/']")).to_have_count(0)
            viewer.screenshot(path=str(tmp_path / "4-viewer.png"), full_page=True)
        finally:
            browser.close()
    assert all((tmp_path / f).stat().st_size > 10_000 for f in
               ("1-overview.png", "2-paused.png", "3-halted.png", "3b-rolled-back.png", "4-viewer.png"))
