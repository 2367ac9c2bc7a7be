"""Drives headless Chromium over the DevTools protocol (on a pipe, so no
port and no extra Python package) for tests/common/browser.rs.

    python3 browser.py CHROMIUM URL

Opens URL, prints one JSON line {"text": <the page's text>}, then waits
for a line on stdin: "click <css selector>" fills nothing else, clicks the
element, waits for the next page and prints its text the same way; "quit"
(or end of input) closes the browser. Every wait is bounded.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

TIMEOUT = 20.0


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
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-pipe", "--no-first-run",
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


def main():
    chromium, url = sys.argv[1], sys.argv[2]
    b = Browser(chromium)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget",
                         {"targetId": target, "flatten": True})["sessionId"]
        b.send("Page.enable", session=session)
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_event("Page.loadEventFired", session)

        def text():
            r = b.send("Runtime.evaluate",
                       {"expression": "document.body ? document.body.innerText : ''",
                        "returnByValue": True}, session=session)
            return r["result"].get("value", "")

        print(json.dumps({"text": text()}), flush=True)
        for line in sys.stdin:
            words = line.strip().split(" ", 1)
            if words[0] != "click":
                break
            b.send("Runtime.evaluate",
                   {"expression": f"document.querySelector({json.dumps(words[1])}).click()"},
                   session=session)
            b.wait_event("Page.loadEventFired", session)
            print(json.dumps({"text": text()}), flush=True)
    finally:
        b.close()


if __name__ == "__main__":
    main()
