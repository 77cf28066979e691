"""The web board in a real headless Chromium (Debian's, driven by Playwright; never a
downloaded browser): log in, see an incident, acknowledge it, see the ack on the timeline;
at phone width (375 x 812) no page scrolls sideways. Screenshots are kept as artifacts.

The board is served by its own aiohttp server on a run-time port, in a thread, over the
daemon's real ``Inbound`` and state database (``tests/board_stack.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.board_stack import TOKENS, alert, build_stack, seed

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 15_000  # the longest any one browser step may take (this machine is shared)
RESPONDER = "alice-oncall"
PHONE = {"width": 375, "height": 812}
PAGES = ["/board/", "/board/incidents/1", "/board/maintenance", "/board/silences"]


def chromium_or_skip() -> str:
    """Return the system Chromium's path, or skip the test saying why; with
    ``ALERTD_REQUIRE_PEERS=1`` (CI) a missing browser or Playwright fails it instead."""
    problem = None
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        problem = "chromium not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[test]')"
    if problem is not None:
        if os.environ.get("ALERTD_REQUIRE_PEERS") == "1":
            pytest.fail(f"ALERTD_REQUIRE_PEERS=1 but {problem}", pytrace=False)
        pytest.skip(problem)
    assert path is not None
    return path


@dataclass
class Served:
    base: str
    state_dir: Path


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Served]:
    """Serve the seeded board from a thread with its own event loop (the state database
    connection lives in that thread, as it does on the daemon's loop)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stack = build_stack(tmp_path, TOKENS)
        seed(stack)
        # the worst case for a narrow screen: long unbroken label values and summary words
        long_name = "edge-router-" + "x" * 60 + ".datacentre-frankfurt.example.net"
        stack.post_alerts(
            [alert("BgpPeerDown", f"BGP peer down on {long_name}", "major", peer=long_name)]
        )
        runner = web.AppRunner(stack.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        stop = asyncio.Event()
        box.update(base=f"http://{host}:{port}", loop=asyncio.get_running_loop(), stop=stop)
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            stack.inbound.conn.close()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported by the fixture below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="board-server", daemon=True)
    thread.start()
    assert ready.wait(30), "the board server did not start within 30s"
    if "error" in box:
        raise box["error"]
    try:
        yield Served(box["base"], tmp_path / "state")
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        assert not thread.is_alive(), "the board server did not stop within 30s"


@pytest.fixture
def screenshots(tmp_path: Path) -> Iterator[Path]:
    """Where the screenshots go; copied to ``$ALERTD_ARTIFACTS/board`` when that is set."""
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"board screenshots: {shots}")
    yield shots
    artifacts = os.environ.get("ALERTD_ARTIFACTS")
    if artifacts:
        target = Path(artifacts) / "board"
        shutil.copytree(shots, target, dirs_exist_ok=True)
        print(f"board screenshots copied to {target}")


@pytest.fixture
def chromium() -> str:
    return chromium_or_skip()


def test_log_in_see_an_incident_ack_it_and_read_it_on_a_phone(
    chromium: str, board: Served, screenshots: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    problems: list[str] = []  # console errors (a CSP violation is one) and page errors
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True)
        try:
            desktop = browser.new_context(viewport={"width": 1280, "height": 900})
            desktop.set_default_timeout(WAIT_MS)
            page = desktop.new_page()
            page.on(
                "console",
                lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda exc: problems.append(str(exc)))

            # log in: the board sends a stranger to the login form first
            page.goto(board.base + "/board/")
            expect(page).to_have_url(board.base + "/board/login?next=%2Fboard%2F")
            page.get_by_label("API token").fill(TOKENS[RESPONDER][0])
            page.get_by_role("button", name="Log in").click()
            expect(page).to_have_url(board.base + "/board/")
            expect(page.locator(".who")).to_contain_text(f"Signed in as {RESPONDER}")

            # the P1 incident is on the open list, its priority and target in words
            p1 = page.locator("section.group", has=page.locator("h2", has_text="P1"))
            row = p1.locator("tbody tr").first
            expect(row).to_contain_text("core switch down")
            expect(row).to_contain_text("respond overdue by 12m")
            expect(row.locator(".state")).to_have_text("open")
            colour = row.locator(".pri").evaluate("e => getComputedStyle(e).backgroundColor")
            assert colour == "rgb(155, 28, 28)"  # the stylesheet loaded under the CSP
            page.screenshot(path=screenshots / "list-desktop.png", full_page=True)

            # open it and acknowledge it
            row.get_by_role("link", name="core switch down").click()
            expect(page).to_have_url(board.base + "/board/incidents/1")
            expect(page.get_by_role("heading", level=1)).to_contain_text("#1")
            page.get_by_label("Comment").fill("on it")
            page.get_by_role("button", name="Acknowledge").click()
            expect(page).to_have_url(board.base + "/board/incidents/1")
            expect(page.locator("p.status .state")).to_have_text("acknowledged")
            ack = page.locator("ol.timeline li", has_text="acknowledged via board")
            expect(ack).to_contain_text(f"acknowledged by {RESPONDER}: acknowledged via board")
            expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
            page.screenshot(path=screenshots / "incident-desktop.png", full_page=True)

            # at phone width nothing scrolls sideways, logged in with the same session
            phone = browser.new_context(
                viewport=PHONE,
                is_mobile=True,
                has_touch=True,
                storage_state=desktop.storage_state(),
            )
            phone.set_default_timeout(WAIT_MS)
            small = phone.new_page()
            small.on(
                "console",
                lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None,
            )
            widths = {}
            for path in PAGES:
                small.goto(board.base + path)
                expect(small.locator(".who")).to_contain_text(RESPONDER)
                widths[path] = small.evaluate(
                    "[document.documentElement.scrollWidth, window.innerWidth]"
                )
                name = path.strip("/").replace("/", "-")
                small.screenshot(path=screenshots / f"{name}-phone.png", full_page=True)
            assert all(scroll <= inner for scroll, inner in widths.values()), widths
            # on a phone the incident table collapses into labelled cards
            small.goto(board.base + "/board/")
            label = small.locator("td[data-label='Target']").first.evaluate(
                "e => getComputedStyle(e, '::before').content"
            )
            assert label == '"Target"'
        finally:
            browser.close()
    assert problems == []
    with contextlib.closing(sqlite3.connect(board.state_dir / "alertd.sqlite3")) as conn:
        stored = conn.execute("SELECT state, acknowledged_by FROM incidents WHERE id = 1")
        assert stored.fetchone() == ("acknowledged", RESPONDER)
    assert sorted(p.name for p in screenshots.iterdir()) == [
        "board-incidents-1-phone.png",
        "board-maintenance-phone.png",
        "board-phone.png",
        "board-silences-phone.png",
        "incident-desktop.png",
        "list-desktop.png",
    ]
