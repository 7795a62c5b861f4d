#!/usr/bin/env python3
"""The built-in page's first load, in Debian's Chromium (Playwright).

Usage: page_load.py BASE_URL FRAGMENT RUNS

Opens BASE_URL/#FRAGMENT in a fresh browser context RUNS times and prints
one JSON object: per run, the milliseconds from the start of navigation
until the first graph is on screen as the server's PNG (preview.js) and
until the interactive chart is drawn (the page's own clock), and the bytes
the first load transferred (the page and its assets; the data requests
apart).
"""
import json
import os
import sys

from playwright.sync_api import sync_playwright


def main():
    base, fragment, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    out = {"shown_ms": [], "drawn_ms": [], "page_bytes": 0, "data_bytes": 0}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        for _ in range(runs):
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            page = ctx.new_page()
            page.goto(base + "/#" + fragment)
            # (A selector, not a polling predicate: that would be an eval,
            # which the page's content security policy forbids.)
            page.wait_for_selector(".graph[data-state=drawn]", timeout=30000)
            out["drawn_ms"].append(page.evaluate("performance.now()"))
            out["shown_ms"].append(page.evaluate("window.carbynePreviewShown === undefined ? null : window.carbynePreviewShown"))
            entries = page.evaluate(
                "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
                ".map(e => [e.name, e.transferSize || 0])"
            )
            out["page_bytes"] = sum(b for n, b in entries if "/render" not in n and "/metrics" not in n and "/functions" not in n)
            out["data_bytes"] = sum(b for n, b in entries if "/render" in n)
            ctx.close()
        browser.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
