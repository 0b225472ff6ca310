"""Headless Chromium driven over the Chrome DevTools Protocol, stdlib only.

``--remote-debugging-pipe`` makes the browser read CDP commands from its fd 3 and
write replies and events to its fd 4, each message JSON terminated by a NUL byte;
no port, no websocket library.  Used by the report tests to load report.html,
evaluate JavaScript in it, record every network request it makes, and take a
full-page screenshot (decoded by :func:`decode_png`).

Debian's ``chromium`` package is required: the tests fail (never skip) with the
install line when it is missing.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numba
import numpy as np

INSTALL_LINE = "apt-get update && apt-get install -y chromium"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# The network is closed on this machine; these flags stop the browser from trying.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--hide-scrollbars", "--font-render-hinting=none",
)


class BrowserError(RuntimeError):
    """The browser died, timed out or answered a command with an error."""


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium process; use as a context manager."""

    def __init__(self, executable: str, *, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="settlechain-chromium-")
        self._stderr = tempfile.TemporaryFile()
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire_pipes() -> None:  # in the child, before exec
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
            pass_fds=(3, 4), preexec_fn=wire_pipes,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    # -- plumbing ------------------------------------------------------------

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-2000:]

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no answer from chromium within {self.timeout_s} s; "
                                   f"stderr:\n{self._stderr_tail()}")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium closed the DevTools pipe (exit code "
                                   f"{self.process.poll()}); stderr:\n{self._stderr_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its result; events meanwhile go to ``events``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._read_message(deadline)
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def wait_browser_event(self, method: str, predicate: Any = None) -> dict[str, Any]:
        """The next browser-level event ``method`` (no session) for which
        ``predicate(params)`` holds; events already received count."""
        deadline = time.monotonic() + self.timeout_s
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("method") == method and "sessionId" not in event and (
                        predicate is None or predicate(event["params"])):
                    self.events.remove(event)
                    return event
            seen = len(self.events)
            self.events.append(self._read_message(deadline))

    def allow_downloads(self, folder: Path) -> None:
        """Save downloads into ``folder`` under their suggested names, with events."""
        self.send("Browser.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(folder.resolve()), "eventsEnabled": True})

    def wait_download(self, folder: Path) -> Path:
        """Wait for the next download to complete; its file in ``folder``."""
        begun = self.wait_browser_event("Browser.downloadWillBegin")["params"]
        guid = begun["guid"]
        done = self.wait_browser_event(
            "Browser.downloadProgress",
            lambda p: p["guid"] == guid and p["state"] in ("completed", "canceled"))
        if done["params"]["state"] != "completed":
            raise BrowserError(f"download {begun['suggestedFilename']!r} was canceled")
        return folder / begun["suggestedFilename"]

    # -- pages ---------------------------------------------------------------

    def open(self, path: Path, *, width: int = 1200, scripts: bool = True) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        if not scripts:
            self.send("Emulation.setScriptExecutionDisabled", {"value": True}, session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        first_event = len(self.events)
        url = path.resolve().as_uri()
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session)
        page = Page(self, session, target, url, first_event)
        # a viewport as tall as the page: every element is on screen (hit tests work)
        height = json.loads(page.evaluate("JSON.stringify(document.documentElement.scrollHeight)"))
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": int(height), "deviceScaleFactor": 1,
                   "mobile": False}, session=session)
        return page

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                try:
                    self.send("Browser.close")
                except (BrowserError, OSError):
                    pass
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            for fd in (self._to_browser, self._from_browser):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    def __init__(self, browser: Browser, session: str, target: str, url: str,
                 first_event: int) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.url = url
        self._first_event = first_event

    def evaluate(self, expression: str) -> Any:
        result = self.browser.send("Runtime.evaluate",
                                   {"expression": expression, "returnByValue": True,
                                    "awaitPromise": True}, session=self.session)
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element: it must
        be visible and on top there, as for a person."""
        box = json.loads(self.evaluate(
            "(() => { const e = document.querySelector(" + json.dumps(selector) + ");"
            " if (!e) return 'null'; e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return JSON.stringify([r.x + r.width / 2, r.y + r.height / 2]); })()"))
        if box is None:
            raise BrowserError(f"no element matches {selector!r}")
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.browser.send("Input.dispatchMouseEvent", {
                "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                session=self.session)

    def choose(self, selector: str, value: str) -> None:
        """Pick an option of a <select>, as a person would (value, then 'change')."""
        found = self.evaluate(
            "(() => { const s = document.querySelector(" + json.dumps(selector) + ");"
            " if (!s || ![...s.options].some(o => o.value === " + json.dumps(value) + "))"
            " return false; s.value = " + json.dumps(value) + ";"
            " s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()")
        if not found:
            raise BrowserError(f"{selector!r} has no option {value!r}")

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [e for e in self.browser.events[self._first_event:]
                if e.get("method") == method and e.get("sessionId") == self.session]

    def requested_urls(self) -> list[str]:
        """Every URL the page asked the network stack for (the page itself included)."""
        return [e["params"]["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def log_entries(self) -> list[dict[str, Any]]:
        """Console and browser log entries (a CSP violation shows up here)."""
        return ([e["params"]["entry"] for e in self._events("Log.entryAdded")]
                + [e["params"] for e in self._events("Runtime.consoleAPICalled")])

    def screenshot(self) -> bytes:
        """A PNG of the whole page at device scale 1."""
        size = self.evaluate("JSON.stringify([document.documentElement.scrollWidth,"
                             " document.documentElement.scrollHeight])")
        width, height = json.loads(size)
        shot = self.browser.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        }, session=self.session)
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        self.browser.send("Target.closeTarget", {"targetId": self.target})


# ---------------------------------------------------------------------------
# PNG decoding (8-bit RGB/RGBA, not interlaced: what Chromium writes)


@numba.njit(cache=True)
def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    out = np.zeros((height, stride), dtype=np.uint8)
    pos = 0
    for y in range(height):
        kind = raw[pos]
        pos += 1
        for x in range(stride):
            a = int(out[y, x - bpp]) if x >= bpp else 0
            b = int(out[y - 1, x]) if y > 0 else 0
            c = int(out[y - 1, x - bpp]) if (y > 0 and x >= bpp) else 0
            v = int(raw[pos + x])
            if kind == 0:
                r = v
            elif kind == 1:
                r = v + a
            elif kind == 2:
                r = v + b
            elif kind == 3:
                r = v + (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                if pa <= pb and pa <= pc:
                    r = v + a
                elif pb <= pc:
                    r = v + b
                else:
                    r = v + c
            out[y, x] = r & 0xFF
        pos += stride
    return out


def decode_png(data: bytes) -> np.ndarray:
    """(height, width, 3) uint8 RGB pixels of a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG: bad signature")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {color}, "
                         f"interlace {interlace}; expected 8-bit RGB/RGBA, not interlaced")
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    stride = width * channels
    if raw.size != height * (stride + 1):
        raise ValueError(f"PNG data size {raw.size}, expected {height * (stride + 1)}")
    pixels = _unfilter(raw, height, stride, channels).reshape(height, width, channels)
    return pixels[:, :, :3]
