#!/usr/bin/env python3
"""carbyne's page in a real browser: Debian's Chromium driven by Playwright.

Usage: page_browser.py BASE_URL SCREENSHOT_DIR LEAF OTHER_LEAF

Walks the page as a user: opens it, expands the metric tree down to LEAF,
clicks it (a graph is drawn), reloads the page's URL in a new tab (the
same graphs come back), adds OTHER_LEAF as a second graph, hovers a chart,
hides a series by its legend entry, types a broken target. Prints one JSON
object with what it saw; the Rust test judges it. Screenshots go to
SCREENSHOT_DIR.
"""
import json
import os
import sys
import time

from playwright.sync_api import sync_playwright


def main():
    base, shots, leaf, other = sys.argv[1:5]
    os.makedirs(shots, exist_ok=True)
    out = {"console_errors": []}

    def watch(page):
        page.on("console", lambda m: m.type == "error" and out["console_errors"].append(m.text))
        page.on("pageerror", lambda e: out["console_errors"].append(str(e)))

    def drawn(page, n):
        page.wait_for_function(
            "n => document.querySelectorAll('.graph[data-state=drawn]').length >= n", arg=n, timeout=15000
        )

    def chart_data(page, i):
        return page.evaluate(
            "i => { const c = window.carbynePage.cards[i].chart;"
            " return { x: Array.from(c.data[0]), y: Array.from(c.data[1]),"
            " labels: c.series.slice(1).map(s => s.label) }; }",
            i,
        )

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        watch(page)
        started = time.time()
        response = page.goto(base + "/")
        out["status"] = response.status
        out["headers"] = {k.lower(): v for k, v in response.headers.items()}
        page.wait_for_selector("#tree .node", timeout=15000)
        out["tree_top"] = page.eval_on_selector_all("#tree > li > .node", "ns => ns.map(n => n.textContent)")

        # The last hour: an hour of points a minute apart, none consolidated.
        page.select_option("#range", "-1h")
        # The tree expands to a leaf; a click on it draws a graph.
        parts = leaf.split(".")
        for n in range(1, len(parts) + 1):
            path = ".".join(parts[:n])
            page.wait_for_selector(f'#tree .node[data-path="{path}"]', timeout=15000)
            page.click(f'#tree .node[data-path="{path}"]')
        drawn(page, 1)
        out["first_graph_ms"] = int((time.time() - started) * 1000)
        out["graph"] = chart_data(page, 0)
        out["url"] = page.url
        page.screenshot(path=os.path.join(shots, "page-one-graph.png"), full_page=True)

        # The URL brings the same graphs back.
        again = context.new_page()
        watch(again)
        again.goto(out["url"])
        # The server's PNG of the graph is shown first (preview.js), then
        # the interactive chart takes its place.
        drawn(again, 1)
        # (Polled from here: a polling predicate in the page is an eval,
        # which the page's content security policy forbids.)
        deadline = time.time() + 15
        out["preview_shown_ms"] = None
        while out["preview_shown_ms"] is None and time.time() < deadline:
            out["preview_shown_ms"] = again.evaluate("window.carbynePreviewShown === undefined ? null : window.carbynePreviewShown")
            time.sleep(0.05)
        out["previews_left"] = again.evaluate("document.querySelectorAll('.graph .preview:not([hidden])').length")
        out["reloaded_state"] = again.evaluate("JSON.parse(JSON.stringify(window.carbynePage.state))")
        out["reloaded_graph"] = chart_data(again, 0)
        again.close()

        # A second graph, from the target box.
        page.click("#add-graph")
        box = page.locator(".graph").nth(1).locator(".new-target")
        box.fill(other)
        box.press("Enter")
        drawn(page, 2)
        page.screenshot(path=os.path.join(shots, "page-two-graphs.png"), full_page=True)
        out["graphs"] = page.evaluate("window.carbynePage.state.graphs.map(g => g.targets)")

        # The target box offers functions and their parameters.
        box = page.locator(".graph").nth(1).locator(".new-target")
        box.fill("movingAverage(")
        out["signature"] = page.locator(".graph").nth(1).locator(".signature").inner_text()
        out["function_options"] = page.eval_on_selector_all("#function-names option", "os => os.length")
        out["functions_served"] = page.evaluate("fetch('/functions').then(r => r.json()).then(f => Object.keys(f).length)")
        box.fill("")

        # Hovering shows values; a click on a legend entry hides its series.
        chart = page.locator(".graph").nth(0).locator(".u-over")
        bbox = chart.bounding_box()
        page.mouse.move(bbox["x"] + bbox["width"] * 0.6, bbox["y"] + bbox["height"] / 2)
        time.sleep(0.3)
        out["hover_values"] = page.locator(".graph").nth(0).locator(".u-legend .u-series .u-value").all_inner_texts()
        # Moved off the plot first, so uPlot has redrawn its legend before
        # the click; a click that did not take (the machine is slow) is
        # given again, and the series must end up hidden.
        page.mouse.move(5, 5)
        time.sleep(0.3)
        entry = page.locator(".graph").nth(0).locator(".u-legend .u-series").nth(1)
        for _ in range(3):
            entry.click()
            try:
                page.wait_for_function("!window.carbynePage.cards[0].chart.series[1].show", timeout=3000)
                break
            except Exception:
                continue
        out["shown_after_click"] = page.evaluate("window.carbynePage.cards[0].chart.series[1].show")
        page.screenshot(path=os.path.join(shots, "page-legend-hidden.png"), full_page=True)

        # A broken target shows the server's error in the page (and the
        # browser logs the 400 it got: expected, so kept apart).
        out["expected_errors"] = out["console_errors"]
        out["console_errors"] = []
        box = page.locator(".graph").nth(0).locator(".new-target")
        box.fill("sumSeries(")
        box.press("Enter")
        page.wait_for_selector(".graph[data-state=error]", timeout=15000)
        out["error_text"] = page.locator(".graph[data-state=error] .error").inner_text()
        page.screenshot(path=os.path.join(shots, "page-error.png"), full_page=True)
        out["console_errors"], out["expected_errors"] = out["expected_errors"], out["console_errors"]

        # What the first load cost: bytes over the wire, per resource.
        fresh = browser.new_context(viewport={"width": 1280, "height": 800})
        first = fresh.new_page()
        t0 = time.time()
        first.goto(out["url"])
        drawn(first, 1)
        out["fresh_first_graphs_ms"] = int((time.time() - t0) * 1000)
        out["transferred"] = first.evaluate(
            "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
            ".map(e => [e.name, e.transferSize || e.encodedBodySize || 0])"
        )
        fresh.close()
        browser.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
