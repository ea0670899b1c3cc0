"""How long the settings dialog takes to open on the demo, in real Chromium.

    python benchmarks/dialog_open.py [--runs 20] [--port N]

Starts ``python -m consentmw.cli demo`` (receipts and request logs in a temporary folder),
decides once (reject all) so that the page carries only the settings button, then opens
the settings on a fresh page ``--runs`` times. The dialog is not in the page: consent.js
fetches it from ``/_consent/dialog``. Measured in the page, from the click on the settings
button to the dialog being open with its first checkbox visible, and to the next frame after
that (when it is on screen). Two ways of clicking:

- ``hover + click``: Playwright's click moves the mouse onto the button first, as a visitor
  does, and consent.js starts fetching on hover (a few ms before the click, here);
- ``click only``: ``button.click()`` without any hover or focus, so the fetch starts at the
  click (the slowest case: a touch screen, or a script calling it).

Prints the medians; the target is under 100 ms. Needs Playwright and Chromium at
/usr/bin/chromium. Requests to other hosts (Google's tag) are answered empty, locally.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TARGET_MS = 100.0

# Installed before the click: resolves with [ms to open with the first checkbox visible,
# ms to the next animation frame after that], both from the click's event time.
WATCH_JS = """() => { window.__cmwOpened = new Promise(done => {
  document.addEventListener("click", e => {
    if (!e.target.closest("[data-cmw-open]")) return;
    const t0 = performance.now();
    const root = document.querySelector("[data-consentmw-snippet]");
    const check = () => {
      const d = root.querySelector("[data-cmw-dialog]");
      const box = d && d.open && d.querySelector('input[type="checkbox"]');
      if (!box || !box.checkVisibility()) return false;
      const opened = performance.now() - t0;
      requestAnimationFrame(() => done([opened, performance.now() - t0]));
      return true;
    };
    if (check()) return;
    const seen = new MutationObserver(() => { if (check()) seen.disconnect(); });
    seen.observe(root, { subtree: true, childList: true, attributes: true,
                         attributeFilter: ["open"] });
  }, true);
}); }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(port: int, folder: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "consentmw.cli", "demo", "--port", str(port),
        "--records-url", f"sqlite:///{folder}/receipts.db", "--log-dir", str(folder / "logs"),
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_consent", timeout=1).read()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the demo did not start on port {port}")


def measure(page: Any, base: str, how: str) -> tuple[float, float]:
    page.goto(base + "/")
    page.mouse.move(600, 10)  # away from the settings button: no hover before the click
    button = page.locator("[data-consentmw-snippet] #cmw-reopen")
    button.wait_for()
    page.evaluate(WATCH_JS)
    if how == "hover + click":
        button.click()
    else:
        button.evaluate("b => b.click()")
    opened, frame = page.evaluate("window.__cmwOpened")
    page.keyboard.press("Escape")
    return float(opened), float(frame)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        demo = start_demo(port, Path(tmp))
        try:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.route(lambda url: not url.startswith(base), lambda r: r.fulfill(status=204))
            page = context.new_page()
            page.goto(base + "/")
            page.get_by_role("button", name="Avvis alle").click()
            page.locator("[data-cmw-banner]").wait_for(state="detached")
            results: dict[str, list[tuple[float, float]]] = {}
            for how in ("hover + click", "click only"):
                for _ in range(3):  # warm-up: server, caches, JIT
                    measure(page, base, how)
                results[how] = [measure(page, base, how) for _ in range(args.runs)]
            browser.close()
        finally:
            demo.terminate()
            demo.wait(15)
    print(f"settings dialog open on the demo, Chromium, median of {args.runs} fresh pages")
    print(f"{'':16}{'open + checkbox':>18}{'next frame':>12}{'max open':>10}")
    for how, runs in results.items():
        opened = statistics.median(r[0] for r in runs)
        frame = statistics.median(r[1] for r in runs)
        worst = max(r[0] for r in runs)
        print(f"{how:16}{opened:15.1f} ms{frame:9.1f} ms{worst:7.1f} ms")
    slowest = max(statistics.median(r[0] for r in runs) for runs in results.values())
    verdict = "PASS" if slowest < TARGET_MS else "MISS"
    print(f"target < {TARGET_MS:.0f} ms: {verdict} (slowest median {slowest:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
