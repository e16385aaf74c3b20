"""The drawing page against a server started with --api-key, in a real browser (Debian's
Chromium driven by Playwright): the page asks for the key, says when one is refused, then
classifies with the accepted one and keeps it for the tab.

Usage: python3 tests/browser/api_key.py HOST:PORT KEY     (run by .ci/test.sh)
"""
import sys

from chromium import chromium_page
from playwright.sync_api import expect

url, key = f"http://{sys.argv[1]}/", sys.argv[2]

with chromium_page() as page:
    sent = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/v1/" in r.url else None)
    page.goto(url)

    # /v1/models answered 401: the key form shows, nothing else breaks.
    expect(page.locator("#key")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("asks for an API key")

    # A wrong key is refused by the server, and the page says so.
    page.locator("#key-input").fill("not-the-key-0123456789")
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#error")).to_contain_text("not accepted")
    expect(page.locator("#key")).to_be_visible()

    # The right key: the model loads, an example is classified, the form goes away.
    page.locator("#key-input").fill(key)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#model")).to_contain_text("digits-cnn")
    expect(page.locator("#key")).to_be_hidden()
    page.get_by_role("button", name="Load an example 3 from the data set").click()
    expect(page.locator("#label")).to_contain_text("3", timeout=10_000)
    expect(page.locator("#error")).to_be_hidden()
    assert sent[-1] == f"Bearer {key}", sent

    # Kept for the tab: a reload asks again for nothing.
    page.reload()
    expect(page.locator("#model")).to_contain_text("digits-cnn")
    expect(page.locator("#key")).to_be_hidden()
print("browser with --api-key: OK (asked, refused a wrong key, classified with the right one, kept it on reload)")
