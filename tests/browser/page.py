"""The drawing page in a real browser (Debian's Chromium driven by Playwright; no browser is
downloaded): draw a digit stroke by stroke, check the 8x8 input and the label shown, load an
example, check the page's JavaScript reduction against the data set, save a screenshot.

Usage: python3 tests/browser/page.py HOST:PORT SCREENSHOT.png     (run by .ci/run)
"""
import gzip
import json
import math
import sys
from pathlib import Path

from chromium import chromium_page
from playwright.sync_api import expect


def flat(value):
    """A tensor row's values in row-major order, however deeply they nest."""
    return [x for item in value for x in flat(item)] if isinstance(value, list) else [value]


url = f"http://{sys.argv[1] if len(sys.argv) > 1 else 'localhost:8080'}/"
shot = Path(sys.argv[2] if len(sys.argv) > 2 else "target/browser/page.png")
shot.parent.mkdir(parents=True, exist_ok=True)
rows = [
    [int(v) for v in line.strip().split(",")]
    for line in gzip.open(Path(__file__).resolve().parents[1] / "data" / "digits.csv.gz", "rt")
    if line.strip()
]

with chromium_page() as page:
    sent, failed = [], []
    page.on("request", lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/v1/predict") else None)
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(url)
    expect(page.locator("#model")).to_contain_text("digits-cnn")
    # Everything a visit loads is there, the icon included (no console error on any visit).
    page.wait_for_load_state("networkidle")
    assert not failed, failed
    assert page.evaluate("document.querySelector('link[rel=icon]').href").endswith("/favicon.ico")

    # The JavaScript that ships reduces a 32x32 bitmap exactly as the data set was made: a
    # bitmap rebuilt from every row of the data set reduces back to that row.
    mismatches = page.evaluate(
        """rows => rows.filter(r => {
             const back = window.ember.reduce(window.ember.expand(r.slice(0, 64)));
             return back.some((v, i) => v !== r[i]);
           }).length""",
        rows,
    )
    assert mismatches == 0, f"{mismatches} of {len(rows)} rows do not survive expand/reduce"

    # Draw a zero, stroke by stroke, with the mouse: an ellipse around the pad's centre.
    pad = page.locator("#pad")
    box = pad.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    rx, ry = box["width"] * 0.22, box["height"] * 0.34
    page.mouse.move(cx, cy - ry)
    page.mouse.down()
    for step in range(1, 41):
        a = 2 * math.pi * step / 40
        page.mouse.move(cx + rx * math.sin(a), cy - ry * math.cos(a), steps=2)
    page.mouse.up()
    expect(page.locator("#label")).to_contain_text("0", timeout=10_000)
    assert page.locator("#label").inner_text().startswith("0"), page.locator("#label").inner_text()

    # The 8x8 grid shows what the page sent, and that is the reduction of what was drawn.
    grid = [int(c) for c in page.locator("#grid span").all_inner_texts()]
    drawn = page.evaluate("window.ember.reduce(window.ember.bitmap)")
    assert grid == drawn, (grid, drawn)
    assert sent and sent[-1]["inputs"][0] == grid, "the request did not carry the grid"
    assert sum(grid) > 100 and max(grid) <= 16 and grid[0] == 0, grid  # a ring, empty corners
    assert grid[4 * 8 + 2] > grid[4 * 8 + 3] + 4, f"the middle of a zero is emptier than its side: {grid}"
    bars = page.locator("#bars li .pct").all_inner_texts()
    assert len(bars) == 10 and all(b.endswith("%") for b in bars), bars
    shot_drawn = shot.with_name(shot.stem + "-drawn.png")
    page.screenshot(path=str(shot_drawn), full_page=True)

    # Clear, then load an example of each digit: the model names it.
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#label")).to_contain_text("Draw something")
    for digit in (7, 3):
        page.get_by_role("button", name=f"Load an example {digit} from the data set").click()
        expect(page.locator("#label")).to_contain_text(str(digit), timeout=10_000)
        grid = [int(c) for c in page.locator("#grid span").all_inner_texts()]
        first = next(r for r in rows if r[64] == digit)
        assert grid == first[:64], (digit, grid)

    # Keyboard: focus the pad, Delete clears, Space draws at the cursor.
    pad.focus()
    page.keyboard.press("Delete")
    expect(page.locator("#label")).to_contain_text("Draw something")
    page.keyboard.press("Space")
    expect(page.locator("#label")).not_to_contain_text("Draw something", timeout=10_000)

    # API errors are shown, not swallowed.
    page.route("**/v1/predict", lambda route: route.fulfill(
        status=503, content_type="application/problem+json",
        body=json.dumps({"type": "urn:ember-serve:problem:overloaded", "title": "Overloaded",
                         "status": 503, "detail": "the inference queue is full"})))
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    expect(page.locator("#error")).to_contain_text("the inference queue is full", timeout=10_000)
    page.unroute("**/v1/predict")

    page.get_by_role("button", name="Load an example 7 from the data set").click()
    expect(page.locator("#error")).to_be_hidden(timeout=10_000)

    # Every model of the repository gets a form built from its metadata: a held-out row gets the
    # label ONNX Runtime gives it (or, for a regressor, its value); a bad row gets the reason.
    repository = Path(__file__).resolve().parents[2] / "weights"
    served = sorted(p.parent.name for p in repository.glob("*/model.onnx"))
    assert sorted(page.locator(".model-form").evaluate_all("fs => fs.map(f => f.dataset.model)")) == served
    for name in served:
        config = json.loads((repository / name / "config.json").read_text())
        examples = json.loads((repository / name / "examples.json").read_text())
        form = page.locator(f'.model-form[data-model="{name}"]')
        for t in config["inputs"]:
            row = flat(examples["inputs"][t["name"]][0])
            form.get_by_label(t["name"], exact=False).fill(", ".join(str(v) for v in row))
        form.get_by_role("button", name="Predict").click()
        out = config["outputs"][0]
        want = examples["outputs"][out["name"]][0]
        if out.get("labels"):
            expected = out["labels"][want.index(max(want))]
        else:
            expected = f'{out["name"]}: {round(want[0], 2)}'
        expect(form.locator("output")).to_contain_text(expected, timeout=10_000)
    form = page.locator(f'.model-form[data-model="{served[0]}"]')
    form.locator("textarea").first.fill("1, 2, 3")
    form.get_by_role("button", name="Predict").click()
    expect(form.locator("output")).to_contain_text("3 values", timeout=10_000)
    page.screenshot(path=str(shot), full_page=True)

    # A phone: everything fits the width; nothing scrolls sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{overflow}px of sideways scroll on a phone"
    page.screenshot(path=str(shot.with_name(shot.stem + "-phone.png")), full_page=True)
print(f"browser: OK (drew a 0, examples 7 and 3, keyboard, error shown; {len(rows)} rows reduce back; forms of {', '.join(served)}); screenshots in {shot.parent}")
