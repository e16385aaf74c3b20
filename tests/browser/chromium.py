"""What the browser checks share: Debian's Chromium driven by Playwright (no browser is ever
downloaded), one page, and a check that the page's JavaScript raised nothing."""
from contextlib import contextmanager

from playwright.sync_api import sync_playwright


@contextmanager
def chromium_page():
    """A 1100x720 page; yields it, then fails if any script on it threw."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 720})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        assert not errors, errors
        browser.close()
