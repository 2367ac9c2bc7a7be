"""Drives headless Chromium over the DevTools protocol (on a pipe, so no
port and no extra Python package) for tests/common/browser.rs and
benches/report_html.sh. Every wait is bounded.

    python3 browser.py CHROMIUM URL

Opens URL, prints one JSON line {"text": <the page's text>}, then waits
for a line on stdin: "click <css selector>" clicks the element, waits for
the next page and prints its text the same way; "quit" (or end of input)
closes the browser.

    python3 browser.py CHROMIUM --report REPORT.html SCREENSHOT.png [SEARCH]

Opens a kpiwatch backtest report from file:// and prints one JSON object
of what it found: console errors and uncaught exceptions; every request
but the file itself (a self-contained page makes none); load_ms (wall
clock from navigation to the page's ready flag and its first chart drawn)
and the page's own performance.now() at both; the tables' rows; the first
chart's painted pixels; with SEARCH, the series the search box lists for
it and the chart Enter opens (its title and pixels). Then a full-page
screenshot (SCREENSHOT_HEIGHT=N in the environment: the top N pixels,
after opening the first alert's chart, as the README's picture is taken).
"""

import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

TIMEOUT = 30.0

# The flags the project runs Chromium with everywhere: without the
# background-networking ones it tries to reach Google's hosts at every
# start, which a closed network refuses.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


class Browser:
    def __init__(self, chromium):
        # fd 3: what Chromium reads (our writes); fd 4: what it writes.
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        self.profile = tempfile.TemporaryDirectory()

        def fds():
            # Copies first: a pipe end may already be fd 3 or 4.
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [chromium, *FLAGS, "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile.name, "about:blank"],
            preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []

    def send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        want = self.next_id
        while True:
            m = self.read()
            if m.get("id") == want:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def read(self):
        deadline = time.time() + TIMEOUT
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.from_chrome, 65536)
            if not chunk:
                raise EOFError("Chromium closed the pipe")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\0", 1)
        return json.loads(line)

    def wait_event(self, method, session):
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            for i, e in enumerate(self.events):
                if e.get("method") == method and e.get("sessionId") == session:
                    del self.events[i]
                    return e
            self.events.append(self.read())
        raise TimeoutError(f"no {method}")

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Tab:
    """One page of a Browser, with the DevTools calls the report check
    needs."""

    def __init__(self, browser, width, height):
        self.b = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.send("Target.attachToTarget",
                                    {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(domain + ".enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method, params=None):
        return self.b.send(method, params, session=self.session)

    def eval(self, expression):
        """The value of a JavaScript expression (a promise is awaited)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, selector, timeout=TIMEOUT - 5):
        """Whether an element matching selector appeared within timeout s."""
        return self.eval(
            "new Promise((ok) => { const t0 = performance.now(); (function poll() {"
            f" if (document.querySelector({json.dumps(selector)})) ok(true);"
            f" else if (performance.now() - t0 > {timeout * 1000}) ok(false);"
            " else setTimeout(poll, 20); })(); })")

    def must(self, selector):
        if not self.wait_for(selector):
            raise TimeoutError(f"no {selector}")

    def key(self, key, code):
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent",
                      {"type": kind, "key": key, "code": code, "windowsVirtualKeyCode": 13,
                       "text": "\r" if kind == "keyDown" else ""})

    def screenshot(self, path, full):
        params = {"format": "png"}
        if full:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"],
                                "height": size["height"], "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def messages(self, url):
        """Console errors and requests seen so far (events are kept by
        Browser.send while it waits for answers)."""
        errors, requests = [], []
        for e in self.b.events:
            if e.get("sessionId") != self.session:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                       for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                errors.append("uncaught: " + d.get("exception", {}).get("description", d.get("text", "")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(p["entry"].get("text", ""))
            elif m == "Network.requestWillBeSent":
                u = p.get("request", {}).get("url", "")
                if u != url and not u.startswith(("data:", "blob:")):
                    requests.append(u)
        return errors, requests


# Painted pixels of a canvas: not transparent, and the observed line's blue.
PIXELS = """((sel) => {
  const c = document.querySelector(sel);
  if (!c || !c.width) return null;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0, blue = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0) painted++;
    if (d[i + 2] > 150 && d[i] < 90 && d[i + 3] > 200) blue++;
  }
  return { painted, blue, width: c.width, height: c.height };
})(%s)"""

FIGURES = """({
  ready_at_ms: Number(document.body.dataset.readyAt),
  first_draw_at_ms: Number((document.querySelector("canvas[data-drawn-at]") || { dataset: {} }).dataset.drawnAt),
  charts: document.querySelectorAll("#charts .chart").length,
  alert_rows: document.querySelectorAll("#alerts tr.alert-row").length,
  kpi_rows: document.querySelectorAll("#kpis tr").length - 1,
  incident_rows: document.querySelectorAll("#incidents tr").length - 1,
  first_alert_words: (document.querySelector("#alerts tr.alert-row td.words") || {}).textContent || null,
})"""

# Charts draw when scrolled into view: pass over the page once, so the
# full-page screenshot shows them drawn.
SCROLL = """(async () => {
  for (let y = 0; y < document.body.scrollHeight; y += window.innerHeight / 2) {
    window.scrollTo(0, y);
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  }
  window.scrollTo(0, 0);
})()"""


def report(chromium, page, screenshot, query):
    url = pathlib.Path(page).resolve().as_uri()
    clip = int(os.environ.get("SCREENSHOT_HEIGHT") or 0)
    b = Browser(chromium)
    out = {}
    try:
        tab = Tab(b, 1400, clip or 1000)
        began = time.time()
        tab.send("Page.navigate", {"url": url})
        b.wait_event("Page.loadEventFired", tab.session)
        tab.must("body[data-ready=true]")
        # Charts draw when on screen: bring the first one there (a long
        # incidents table can push it below the fold).
        tab.eval('(() => { const c = document.querySelector("#charts .chart");'
                 ' if (c) c.scrollIntoView(); })()')
        tab.wait_for("#charts canvas[data-drawn]", timeout=5)
        out["load_ms"] = round((time.time() - began) * 1000)
        tab.eval("window.scrollTo(0, 0)")
        out.update(tab.eval(FIGURES))
        out["first_chart"] = tab.eval(PIXELS % json.dumps("#charts canvas[data-drawn]"))
        if query:
            tab.eval('(() => { const s = document.getElementById("search"); s.focus();'
                     f' s.value = {json.dumps(query)};'
                     ' s.dispatchEvent(new Event("input", { bubbles: true })); })()')
            tab.must("#results button")
            out["search_hits"] = tab.eval(
                '[...document.querySelectorAll("#results button")].map((b) => b.textContent)')
            tab.key("Enter", "Enter")
            tab.must("#picked .chart canvas[data-drawn]")
            out["picked"] = tab.eval(
                'document.querySelector("#picked .chart h3").firstChild.textContent')
            out["picked_chart"] = tab.eval(PIXELS % json.dumps("#picked .chart canvas[data-drawn]"))
        if clip:
            tab.eval('document.querySelector("#alerts tr.alert-row").click()')
            tab.must("#picked .chart:first-child canvas[data-drawn]")
        tab.eval(SCROLL)
        tab.screenshot(screenshot, full=not clip)
        out["screenshot"] = screenshot
        out["console_errors"], out["requests"] = tab.messages(url)
    finally:
        b.close()
    print(json.dumps(out), flush=True)


def main():
    if len(sys.argv) > 2 and sys.argv[2] == "--report":
        chromium, page, screenshot = sys.argv[1], sys.argv[3], sys.argv[4]
        report(chromium, page, screenshot, sys.argv[5] if len(sys.argv) > 5 else None)
        return
    chromium, url = sys.argv[1], sys.argv[2]
    b = Browser(chromium)
    try:
        tab = Tab(b, 1400, 1000)

        def load(expression):
            tab.eval(expression)
            b.wait_event("Page.loadEventFired", tab.session)
            text = tab.eval("document.body ? document.body.innerText : ''") or ""
            print(json.dumps({"text": text}), flush=True)

        load(f"location.href = {json.dumps(url)}")
        for line in sys.stdin:
            words = line.strip().split(" ", 1)
            if words[0] != "click":
                break
            load(f"document.querySelector({json.dumps(words[1])}).click()")
    finally:
        b.close()

if __name__ == "__main__":
    main()
