"""Open an HTML page in real headless Chromium over the DevTools protocol (standard library only).

``check_report_in_browser`` loads a file:// page, collects console errors, exceptions and failed
loads, checks every <img> decoded, reads every element's ``data-key`` text from the DOM and writes
a full-page screenshot. Chromium is the Debian package, installed when missing and root
(``install_chromium``); the websocket client is a minimal RFC 6455 one (text frames, masking,
fragments, ping).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

PACKAGES = ("chromium",)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)
WIDTH = 1280

# Runs in the page after load: waits for every image to decode, then reports what it found.
PAGE_PROBE = """
(async () => {
  const images = Array.from(document.images);
  const decoded = await Promise.all(images.map(i => i.decode().then(() => true, () => false)));
  const keys = {};
  for (const el of document.querySelectorAll('[data-key]')) {
    keys[el.dataset.key] = el.textContent.trim();
  }
  const rows = Array.from(document.querySelectorAll('tr[data-system]')).map(
    r => ({system: r.dataset.system, name: r.dataset.name}));
  const notes = Array.from(document.querySelectorAll('[data-note]')).map(
    n => ({key: n.dataset.note, text: n.textContent.trim()}));
  const external = Array.from(document.querySelectorAll('[src],[href]')).map(
    e => e.getAttribute('src') || e.getAttribute('href')).filter(u => !/^(data:|#)/.test(u));
  return {
    title: document.title,
    images: images.map((img, k) => ({
      alt: img.alt, figure: img.dataset.figure, decoded: decoded[k],
      naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
      dataUri: img.src.startsWith('data:image/png;base64,')})),
    keys: keys,
    propertyRows: rows,
    notes: notes,
    sections: Array.from(document.querySelectorAll('section')).map(s => s.id),
    scripts: document.scripts.length,
    external: external,
    height: Math.ceil(document.documentElement.scrollHeight),
    text: document.body.innerText,
  };
})()
"""


def find_chromium() -> str | None:
    """The Chromium executable on PATH, or None."""
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def install_chromium() -> str | None:
    """Install Debian's chromium when missing; return why that is impossible, or None."""
    if find_chromium():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Chromium is not installed and this user cannot install it (apt-get chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *PACKAGES]
    try:
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                return f"apt-get install chromium failed: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        return "apt-get install chromium timed out"
    return None if find_chromium() else "apt-get installed chromium but it is not on PATH"


class WebSocket:
    """A minimal client websocket (RFC 6455): masked text frames out, any frames in."""

    def __init__(self, url: str, timeout: float) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.rfile = self.sock.makefile("rb")
        status = self.rfile.readline().decode()
        if " 101 " not in status:
            raise ConnectionError(f"websocket handshake refused: {status.strip()}")
        while self.rfile.readline() not in (b"\r\n", b""):
            pass

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[k % 4] for k, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        """Send one text message."""
        self._send_frame(0x1, text.encode())

    def _read(self, n: int) -> bytes:
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("websocket closed by the browser")
        return data

    def recv(self) -> str:
        """Receive one whole text message (answering pings, joining fragments)."""
        parts: list[bytes] = []
        while True:
            first, second = self._read(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if second & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[k % 4] for k, b in enumerate(payload))
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if first & 0x80:
                    return b"".join(parts).decode()

    def close(self) -> None:
        """Close the connection."""
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class DevTools:
    """A DevTools-protocol session with one page: commands by id, events kept in order."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (events met on the way are kept)."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        """Wait for an event (one already received counts)."""
        deadline = time.time() + timeout
        while True:
            for event in self.events:
                if event["method"] == method:
                    return event
            if time.time() > deadline:
                raise TimeoutError(f"no {method} within {timeout:.0f} s")
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        out = []
        for event in self.events:
            p = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                details = p.get("exceptionDetails", {})
                out.append(details.get("exception", {}).get("description") or details.get("text"))
            elif event["method"] == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif event["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
            elif event["method"] == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')}")
        return out


def _debugging_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    """Wait for Chromium to write DevToolsActivePort into its profile and return the port."""
    marker = profile / "DevToolsActivePort"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode}")
        if marker.is_file():
            lines = marker.read_text().split()
            if lines:
                return int(lines[0])
        time.sleep(0.1)
    raise TimeoutError(f"chromium wrote no DevToolsActivePort within {timeout:.0f} s")


def _page_websocket(port: int, timeout: float) -> str:
    """The websocket URL of the browser's first page target."""
    deadline = time.time() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", "/json/list")
            targets = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        if time.time() > deadline:
            raise TimeoutError("chromium has no page target")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the Chromium this module started (its process group)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def _inspect(tools: DevTools, url: str, screenshot: Path, timeout: float) -> dict[str, Any]:
    """Load the page, probe its DOM, take a full-page screenshot."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        tools.call(f"{domain}.enable")
    tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=WIDTH,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    tools.call("Page.navigate", url=url)
    tools.wait_event("Page.loadEventFired", timeout)
    probe = tools.call(
        "Runtime.evaluate", expression=PAGE_PROBE, awaitPromise=True, returnByValue=True
    )
    if "exceptionDetails" in probe:
        raise RuntimeError(f"page probe failed: {probe['exceptionDetails']}")
    result = probe["result"]["value"]
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(result["height"], 16000), "scale": 1}
    shot = tools.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    result["console_errors"] = tools.errors()
    return result


def check_report_in_browser(
    html_path: str | Path, screenshot_path: str | Path, timeout: float = 120.0
) -> dict[str, Any]:
    """Open a page in headless Chromium; return what its DOM shows and the errors it raised.

    The result holds title, images (alt, decoded, naturalWidth, naturalHeight, dataUri), keys
    (data-key -> text), propertyRows, notes, sections, scripts, external (non-data URLs),
    console_errors, images_ok and screenshot (the PNG written).
    """
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("chromium is not installed (report_browser.install_chromium)")
    html_path, screenshot = Path(html_path).resolve(), Path(screenshot_path)
    with tempfile.TemporaryDirectory(prefix="potforge-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            port = _debugging_port(Path(profile), proc, timeout)
            ws = WebSocket(_page_websocket(port, timeout), timeout)
            try:
                result = _inspect(DevTools(ws), html_path.as_uri(), screenshot, timeout)
            finally:
                ws.close()
        finally:
            _stop(proc)
    result["images_ok"] = all(i["decoded"] and i["naturalWidth"] > 0 for i in result["images"])
    result["screenshot"] = str(screenshot)
    return result
