"""A small Chrome DevTools Protocol client for tests: open a page in headless
Chromium, run JavaScript in it, click it, see what it logged and fetched, and
take a screenshot. Standard library only; the WebSocket client (RFC 6455, text
frames, no extensions) is :class:`_WebSocket` below.

    with Browser() as browser:              # BrowserError if it does not start
        page = browser.new_page()
        page.goto(path.as_uri())
        page.evaluate("document.title")
        page.console_errors, page.requests  # what went wrong, what it fetched
        page.screenshot(tmp_path / "page.png")

The browser runs in its own process group with a fresh profile; leaving the
``with`` block kills the group and removes the profile, whatever happened.
Every wait has a timeout and raises :class:`BrowserError` saying what it waited for.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Browser", "BrowserError", "Page", "find_chromium", "image_problems", "link_problems", "png_size"]

BINARIES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class BrowserError(RuntimeError):
    """The browser did not start, answer in time, or accept a command."""


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    for name in BINARIES:
        if path := shutil.which(name):
            return path
    return None


class _WebSocket:
    """A WebSocket client for one ``ws://`` URL: text messages out (masked, as a
    client must), text messages in (fragments joined, pings answered)."""
    _GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, url: str, timeout: float):
        u = urlsplit(url)
        self._sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        self._buf = b""
        key = base64.b64encode(os.urandom(16))
        self._sock.sendall(f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buf:
            self._fill(deadline, "the WebSocket handshake")
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        accept = base64.b64encode(hashlib.sha1(key + self._GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            raise BrowserError(f"WebSocket handshake with {url} refused: {head.decode(errors='replace')!r}")

    def _fill(self, deadline: float, what: str):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"timed out waiting for {what}")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(1 << 20)
        except socket.timeout:
            raise BrowserError(f"timed out waiting for {what}") from None
        if not chunk:
            raise BrowserError(f"the browser closed the DevTools connection while waiting for {what}")
        self._buf += chunk

    def _read(self, n: int, deadline: float, what: str) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline, what)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send_frame(self, opcode: int, payload: bytes):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        # XOR with the repeated mask as one big integer: a byte loop is slow on long payloads
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self._sock.sendall(head + mask + masked)

    def send(self, text: str):
        self._send_frame(0x1, text.encode())

    def recv(self, deadline: float, what: str) -> str:
        """The next text message; BrowserError at ``deadline`` (a ``time.monotonic()`` value)."""
        parts = []
        while True:
            b0, b1 = self._read(2, deadline, what)
            n = b1 & 0x7F
            if n >= 126:
                n = int.from_bytes(self._read(2 if n == 126 else 8, deadline, what), "big")
            mask = self._read(4, deadline, what) if b1 & 0x80 else b""
            payload = self._read(n, deadline, what)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise BrowserError(f"the browser closed the DevTools connection while waiting for {what}")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self._sock.close()


class Page:
    """One tab, attached through the browser's connection (a flat session).

    ``console_errors``: one line per console.error/console.assert call, uncaught
    exception or error logged by the browser (a resource that failed to load).
    ``requests``: the URLs the page asked for, other than the document itself
    and ``data:`` URIs; ``all_requests`` has every one.
    """

    def __init__(self, browser: "Browser", session: str):
        self._browser, self._session = browser, session
        self.url = ""
        self.console_errors: list[str] = []
        self.all_requests: list[str] = []
        self._in_flight: set[str] = set()
        self._loaded = False

    @property
    def requests(self) -> list[str]:
        document = self.url.split("#", 1)[0]
        return [u for u in self.all_requests if u.split("#", 1)[0] != document and not u.startswith("data:")]

    def call(self, method: str, timeout: float | None = None, **params) -> dict:
        """Send one DevTools command to this page; its result."""
        return self._browser.call(method, session=self._session, timeout=timeout, **params)

    def _event(self, method: str, p: dict):
        if method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", a.get("type")))) for a in p["args"])
            self.console_errors.append(f"console.{p['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.console_errors.append(f"uncaught: {d.get('exception', {}).get('description') or d['text']}")
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            e = p["entry"]
            self.console_errors.append(f"{e['source']}: {e['text']}" + (f" ({e['url']})" if e.get("url") else ""))
        elif method == "Network.requestWillBeSent":
            self.all_requests.append(p["request"]["url"])
            self._in_flight.add(p["requestId"])
        elif method in ("Network.loadingFinished", "Network.loadingFailed"):
            self._in_flight.discard(p["requestId"])
        elif method == "Page.loadEventFired":
            self._loaded = True
        elif method == "Inspector.targetCrashed":
            raise BrowserError(f"the page crashed (at {self.url or 'about:blank'})")

    def wait_for(self, predicate, what: str, timeout: float = 10.0):
        """Handle the browser's events until ``predicate()`` is true."""
        self._browser.wait_for(predicate, what, timeout)

    def goto(self, url: str, timeout: float = 15.0):
        """Navigate to ``url``; return once its load event fired and no request is in flight."""
        self.url, self._loaded = url, False
        res = self.call("Page.navigate", timeout=timeout, url=url)
        if res.get("errorText"):
            raise BrowserError(f"could not open {url}: {res['errorText']}")
        self.wait_for(lambda: self._loaded, f"the load event of {url}", timeout)
        self.wait_for(lambda: not self._in_flight, f"the requests of {url} to end", timeout)

    def evaluate(self, expression: str, timeout: float = 10.0):
        """The value of a JavaScript expression (a promise is awaited); BrowserError if it throws."""
        res = self.call("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                        returnByValue=True, userGesture=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise BrowserError(f"{expression[:80]!r} threw: {d.get('exception', {}).get('description') or d['text']}")
        return res["result"].get("value")

    def click(self, x: float, y: float):
        """A left click, as a mouse would do it, at viewport coordinates (x, y)."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {} if kind == "mouseMoved" else {"button": "left", "clickCount": 1}
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def screenshot(self, path, timeout: float = 20.0) -> Path:
        """A PNG of the whole page (not only the viewport), written atomically to ``path``."""
        size = self.call("Page.getLayoutMetrics", timeout=timeout)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", timeout=timeout, format="png", captureBeyondViewport=True,
                         clip=clip)["data"]
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(base64.b64decode(data))
        os.replace(tmp, path)
        return path


class Browser:
    """Headless Chromium with remote debugging on a free port, as a context manager.

    ``binary``: the browser to run (default: :func:`find_chromium`); ``timeout``:
    seconds for the browser to start and for each command; ``viewport``: the
    pages' (width, height) in CSS pixels.
    """

    def __init__(self, binary: str | None = None, timeout: float = 20.0, viewport=(1280, 900)):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise BrowserError(f"no browser found on PATH (looked for {', '.join(BINARIES)})")
        self.timeout, self.viewport = timeout, viewport
        self._proc = self._ws = self._dir = None
        self._next_id = 0
        self._pages: dict[str, Page] = {}

    def __enter__(self) -> "Browser":
        self._dir = Path(tempfile.mkdtemp(prefix="normlab-chromium-"))
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        profile, log = self._dir / "profile", self._dir / "stderr.log"
        args = [self.binary, "--headless", "--no-sandbox", "--remote-debugging-port=0",
                f"--user-data-dir={profile}", f"--window-size={self.viewport[0]},{self.viewport[1]}",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--mute-audio", "about:blank"]
        with open(log, "wb") as err:
            # its own process group: the browser's helpers (zygotes, renderers, GPU) go with it in
            # close(); the crash handlers leave the group but exit when the browser does
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                          start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while True:
            lines = port_file.read_text().split("\n") if port_file.exists() else []
            if len(lines) >= 2 and lines[0].isdigit() and lines[1]:
                break
            if self._proc.poll() is not None:
                raise BrowserError(f"{self.binary} exited with status {self._proc.returncode} before opening "
                                   f"its DevTools port; its stderr ends:\n{self._stderr_tail()}")
            if time.monotonic() > deadline:
                raise BrowserError(f"{self.binary} did not open its DevTools port within {self.timeout:g} s; "
                                   f"its stderr ends:\n{self._stderr_tail()}")
            time.sleep(0.05)
        self._ws = _WebSocket(f"ws://127.0.0.1:{lines[0]}{lines[1]}", self.timeout)

    def _stderr_tail(self, n: int = 15) -> str:
        try:
            return "\n".join((self._dir / "stderr.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no stderr)"

    def close(self):
        """Kill the browser's process group and remove its profile (safe to call twice)."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        if self._proc is not None:
            if self._proc.poll() is None:
                try:
                    os.killpg(self._proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._proc.wait(timeout=10)
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _handle(self, msg: dict):
        page = self._pages.get(msg.get("sessionId"))
        if page is not None and "method" in msg:
            page._event(msg["method"], msg.get("params", {}))

    def call(self, method: str, session: str | None = None, timeout: float | None = None, **params) -> dict:
        """Send one DevTools command (to a page's ``session``, or to the browser); its result.
        Events that arrive meanwhile go to their pages."""
        self._next_id += 1
        msg_id = self._next_id
        msg = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self._ws.recv(deadline, f"the reply to {method} ({timeout:g} s)"))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error'].get('message')} "
                                       f"{reply['error'].get('data', '')}".rstrip())
                return reply.get("result", {})
            self._handle(reply)

    def wait_for(self, predicate, what: str, timeout: float):
        """Handle events until ``predicate()`` is true; BrowserError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self._handle(json.loads(self._ws.recv(deadline, f"{what} ({timeout:g} s)")))

    def new_page(self) -> Page:
        """A new blank tab with the Inspector, Runtime, Log, Network and Page domains on and the viewport set."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Inspector", "Runtime", "Log", "Network", "Page"):
            page.call(f"{domain}.enable")
        width, height = self.viewport
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        return page


# --- the checks a report must pass (tests/lab/test_report_browser.py, tests/test_papers_suite.py) ---

# Every <img>, once its decode settled: did it decode, and is it laid out and visible?
IMAGES_JS = """(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return imgs.map(img => {
    const r = img.getBoundingClientRect();
    return {src: img.getAttribute("src").slice(0, 50), complete: img.complete, naturalWidth: img.naturalWidth,
            width: r.width, height: r.height,
            visible: img.checkVisibility({opacityProperty: true, visibilityProperty: true})};
  });
})()"""

# Scroll to the top, reset the fragment and say where the i-th contents link is
# (its first line box: the middle of a wrapped link's whole box may fall between lines);
# the promise in window.__hashchange settles at the click's navigation.
LINK_JS = """(() => {
  history.replaceState(null, "", location.pathname);
  window.scrollTo(0, 0);
  const a = document.querySelectorAll('a[href^="#"]')[%d];
  a.scrollIntoView({block: "nearest"});
  window.__hashchange = new Promise(r => addEventListener("hashchange", r, {once: true}));
  const r = a.getClientRects()[0], x = r.left + r.width / 2, y = r.top + r.height / 2;
  const id = decodeURIComponent(a.getAttribute("href").slice(1));
  return {href: a.getAttribute("href"), x, y, hit: document.elementFromPoint(x, y)?.closest("a") === a,
          target: document.getElementById(id) !== null};
})()"""

# After the click: where the link's target ended up, two frames after the hashchange.
LANDED_JS = """(async () => {
  await Promise.race([window.__hashchange, new Promise(r => setTimeout(r, 2000))]);
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const el = document.getElementById(decodeURIComponent(location.hash.slice(1)));
  const bottom = document.scrollingElement.scrollHeight - innerHeight;
  return {hash: location.hash, top: el ? el.getBoundingClientRect().top : null, innerHeight,
          atBottom: scrollY >= bottom - 1};
})()"""


def image_problems(page) -> list:
    """One line per <img> that did not decode or is not shown; a line if there is none."""
    images = page.evaluate(IMAGES_JS)
    problems = [] if images else ["no <img> on the page"]
    for i, im in enumerate(images):
        if not (im["complete"] and im["naturalWidth"] > 0):
            problems.append(f"image {i} ({im['src']}...) did not decode: naturalWidth={im['naturalWidth']}")
        elif not (im["width"] > 0 and im["height"] > 0 and im["visible"]):
            problems.append(f"image {i} ({im['src']}...) is not shown: box {im['width']}x{im['height']}, "
                            f"visible={im['visible']}")
    return problems


def link_problems(page) -> list:
    """Click every ``href="#..."`` link; one line per link without a target or that
    does not bring the target's top to the window's top (or within the window,
    when the page cannot scroll further)."""
    count = page.evaluate('document.querySelectorAll(\'a[href^="#"]\').length')
    problems = [] if count else ["no contents links on the page"]
    for i in range(count):
        link = page.evaluate(LINK_JS % i)
        if not link["target"]:
            problems.append(f"link {link['href']}: no element with that id")
            continue
        if not link["hit"]:
            problems.append(f"link {link['href']}: covered by another element, a click does not reach it")
            continue
        page.click(link["x"], link["y"])
        got = page.evaluate(LANDED_JS)
        on_top = got["top"] is not None and abs(got["top"]) <= 2
        in_view = got["atBottom"] and got["top"] is not None and 0 <= got["top"] < got["innerHeight"]
        if got["hash"] != link["href"] or not (on_top or in_view):
            problems.append(f"link {link['href']}: after the click the hash is {got['hash']!r} and the target's "
                            f"top is at {got['top']} px (window height {got['innerHeight']})")
    return problems


def png_size(path) -> tuple:
    """(width, height) from a PNG's IHDR chunk; ValueError if it is not a PNG."""
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG (starts {head[:16]!r})")
    return struct.unpack(">II", head[16:24])
