"""report.html in a real browser (headless Chromium over the DevTools protocol).

Checks: the page loads with no console errors, no exceptions and no network requests; the 3D
view shows the lesions (lesion-coloured pixels in a screenshot of its canvas); dragging rotates
it and the wheel zooms; the slice slider scrolls; every embedded figure decodes.

The DevTools client below is a minimal RFC 6455 websocket client over a loopback socket (no
extra dependency). Skipped with a reason when Chromium is not installed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest

from export_fixtures import chest, report_for

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """Just enough of the Chrome DevTools protocol: calls, events, one flattened page session."""

    def __init__(self, ws_url: str, timeout_s: float = 30.0) -> None:
        url = urlparse(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            response += chunk
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake failed: {response[:200]!r}")
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send_frame(self, payload: bytes, opcode: int = 1) -> None:
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _recv_message(self) -> dict[str, Any]:
        parts = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            if opcode == 9:  # ping
                self._send_frame(payload, opcode=10)
                continue
            if opcode == 8:
                raise ConnectionError("DevTools closed the websocket")
            parts += payload
            if b0 & 0x80:
                message: dict[str, Any] = json.loads(parts.decode("utf-8"))
                return message

    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> Any:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self._send_frame(json.dumps(msg).encode())
        while True:
            reply = self._recv_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 30.0) -> Any:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page never satisfied {expression!r}")

    def close(self) -> None:
        try:
            self._send_frame(b"", opcode=8)
        finally:
            self.sock.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(
            "Chromium is not installed (apt-get install chromium; scripts/setup.sh does it as root)"
        )
    return path


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lungspread.export import ExportOptions, write_exports

    c = chest()
    out = tmp_path_factory.mktemp("report")
    opts = ExportOptions(slicer=False, meshes=False, figures=False, dicom_seg=False)
    write_exports(out, c.ct, c.tumor, c.lungs, report_for(c), opts)
    return out / "report.html"


@pytest.fixture(scope="module")
def page(chromium: str, report_html: Path) -> Iterator[DevTools]:
    """A Chromium page (1280 x 1800 CSS px) with report.html loaded and its viewers ready."""
    profile = tempfile.mkdtemp(prefix="lungspread-chromium-")
    proc = subprocess.Popen(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ws_url = None
        end = time.monotonic() + 60
        assert proc.stderr is not None
        while time.monotonic() < end and ws_url is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                ws_url = found.group(1)
        if ws_url is None:
            pytest.fail("Chromium started but never printed its DevTools address")
        cdp = DevTools(ws_url)
        target = cdp.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = cdp.call(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        cdp.session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            cdp.call(f"{domain}.enable")
        cdp.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 1800, "deviceScaleFactor": 1, "mobile": False},
        )
        cdp.call("Page.navigate", {"url": report_html.as_uri()})
        cdp.wait_for("document.body && document.body.getAttribute('data-ready') === '1'")
        cdp.wait_for("Array.from(document.images).every(i => i.complete)")
        yield cdp
        cdp.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def _canvas_shot(cdp: DevTools, element_id: str) -> np.ndarray:
    from PIL import Image

    rect = cdp.evaluate(
        f"(() => {{ const el = document.getElementById('{element_id}');"
        " el.scrollIntoView({block: 'center'});"
        " const r = el.getBoundingClientRect();"
        " return {x: r.x + window.scrollX, y: r.y + window.scrollY, w: r.width, h: r.height}; })()"
    )
    time.sleep(0.3)
    shot = cdp.call(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": rect["x"],
                "y": rect["y"],
                "width": rect["w"],
                "height": rect["h"],
                "scale": 1,
            },
        },
    )
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB"))


def _lesion_pixels(img: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    """Mask of pixels showing a lesion of colour ``rgb`` (red or orange), possibly seen through
    a translucent lung: red clearly above blue (lungs are blue or green, the background grey),
    and green relative to red like the lesion's own colour (red: low, orange: about half)."""
    px = img.astype(float)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    ratio = g / np.maximum(r, 1)
    want = rgb[1] / rgb[0]
    return (r - b > 60) & (r > 90) & (np.abs(ratio - want) < 0.22)


def _errors(cdp: DevTools) -> list[str]:
    out = []
    for ev in cdp.events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            out.append(str(params.get("exceptionDetails", {}).get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            out.append(str(params["entry"].get("text")))
    return out


def test_page_loads_cleanly_and_offline(page: DevTools, report_html: Path) -> None:
    assert _errors(page) == []
    urls = [
        ev["params"]["request"]["url"]
        for ev in page.events
        if ev.get("method") == "Network.requestWillBeSent"
    ]
    assert urls, "the navigation itself should have been seen"
    assert all(u.startswith(("file:", "data:", "about:")) for u in urls), urls
    title = page.evaluate("document.title")
    assert title == "lungspread report"
    # the figures decode: every <img> has pixels
    sizes = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(sizes) == 4 and min(sizes) > 500


def test_3d_view_shows_the_lesions_and_responds(page: DevTools) -> None:
    from lungspread.export.structures import LESION_COLORS

    img = _canvas_shot(page, "viewer-canvas")
    assert img.shape[0] > 300 and img.shape[1] > 400
    red = _lesion_pixels(img, LESION_COLORS[0])
    orange = _lesion_pixels(img, LESION_COLORS[1])
    assert red.sum() > 300, red.sum()  # L1, 11 mm radius
    assert orange.sum() > 40, orange.sum()  # L2, 6 mm radius
    # front view: L1 (right lung) on the canvas's left half, L2 (left lung) on its right half
    assert np.argwhere(red)[:, 1].mean() < img.shape[1] / 2
    assert np.argwhere(orange)[:, 1].mean() > img.shape[1] / 2
    # lungs: blue-dominant pixels (the right lung), plenty of them
    blue = (img[..., 2].astype(int) - img[..., 0] > 15) & (img[..., 2] > 60)
    assert blue.sum() > 5000
    # with the lungs hidden, the lesions show in their own colours
    page.evaluate(
        "(() => { const c = document.getElementById('toggle-lungs'); c.checked = false;"
        " c.dispatchEvent(new Event('change')); })()"
    )
    time.sleep(0.3)
    bare = _canvas_shot(page, "viewer-canvas")
    assert _lesion_pixels(bare, LESION_COLORS[0]).sum() >= red.sum() * 0.9
    assert not ((bare[..., 2].astype(int) - bare[..., 0] > 15) & (bare[..., 2] > 60)).any()
    page.evaluate(
        "(() => { const c = document.getElementById('toggle-lungs'); c.checked = true;"
        " c.dispatchEvent(new Event('change')); })()"
    )

    before = int(page.evaluate("+document.getElementById('viewer-canvas').dataset.rendered"))
    r = page.evaluate(
        "(() => { const b = document.getElementById('viewer-canvas').getBoundingClientRect();"
        " return [b.x + b.width / 2, b.y + b.height / 2]; })()"
    )
    x, y = r
    page.call(
        "Input.dispatchMouseEvent",
        {"type": "mousePressed", "x": x, "y": y, "button": "left", "clickCount": 1},
    )
    for step in range(1, 11):
        page.call(
            "Input.dispatchMouseEvent",
            {"type": "mouseMoved", "x": x + 16 * step, "y": y, "button": "left", "buttons": 1},
        )
    page.call(
        "Input.dispatchMouseEvent",
        {"type": "mouseReleased", "x": x + 160, "y": y, "button": "left", "clickCount": 1},
    )
    page.wait_for(f"+document.getElementById('viewer-canvas').dataset.rendered > {before}")
    rotated = _canvas_shot(page, "viewer-canvas")
    assert np.abs(rotated.astype(int) - img.astype(int)).sum(axis=2).astype(bool).mean() > 0.02

    page.evaluate("window.lungspread.viewer.setView('front')")
    time.sleep(0.2)
    base = _lesion_pixels(_canvas_shot(page, "viewer-canvas"), LESION_COLORS[0]).sum()
    r = page.evaluate(
        "(() => { const b = document.getElementById('viewer-canvas').getBoundingClientRect();"
        " return [b.x + b.width / 2, b.y + b.height / 2]; })()"
    )
    page.call(
        "Input.dispatchMouseEvent",
        {"type": "mouseWheel", "x": r[0], "y": r[1], "deltaX": 0, "deltaY": -400},
    )
    time.sleep(0.3)
    zoomed = _lesion_pixels(_canvas_shot(page, "viewer-canvas"), LESION_COLORS[0]).sum()
    assert zoomed > 1.5 * base, (base, zoomed)
    assert _errors(page) == []


def test_slice_scroller(page: DevTools) -> None:
    from lungspread.export.structures import LESION_COLORS

    label0 = page.evaluate("document.getElementById('slice-label').textContent")
    assert re.match(r"z = -?\d+\.\d mm \(slice \d+ of \d+\)", label0), label0
    # it opens on the slice with the most tumor: L1's outline is visible
    img = _canvas_shot(page, "slice-canvas")
    assert _lesion_pixels(img, LESION_COLORS[0]).sum() > 20
    page.evaluate(
        "(() => { const s = document.getElementById('slice-slider'); s.value = '0';"
        " s.dispatchEvent(new Event('input')); })()"
    )
    label1 = page.evaluate("document.getElementById('slice-label').textContent")
    assert label1 != label0 and "(slice 1 of" in label1
    assert _errors(page) == []
