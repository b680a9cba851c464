"""Debian's chromium through Playwright's sync API: one launch for every browser test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"


def screenshots_dir(name: str) -> Path:
    """screenshots/<name>/, emptied of the previous run's PNGs."""
    folder = SCREENSHOTS / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture
def browser_context(monkeypatch):
    """A fresh chromium context (1280x900); `context.problems` collects console errors."""
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    # Playwright's sync API keeps an event loop in this thread; the test also uses the ORM.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        problems: list[str] = []
        context.problems = problems
        context.on("console", lambda m: m.type == "error" and problems.append(m.text))
        try:
            yield context
        finally:
            context.close()
            browser.close()
            # ORM calls made while Playwright's loop ran may have opened their own connection.
            from django.db import connections

            connections.close_all()


@pytest.fixture
def page(browser_context):
    """A page of `browser_context`; `page.problems` collects its console and script errors."""
    pg = browser_context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: m.type == "error" and problems.append(f"{pg.url}: {m.text}"))
    pg.on("pageerror", lambda e: problems.append(str(e)))
    pg.problems = problems
    return pg
