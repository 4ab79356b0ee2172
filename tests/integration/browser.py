"""Headless Chromium driven over the DevTools protocol: one page, its scripts and network log.

Debian's `chromium` speaks the protocol itself, so no WebDriver is needed: the tests open a
page, run JavaScript in it, hand a file to a file input, read every response the page got and
take a screenshot. Host names resolve through --host-resolver-rules only (every other name
fails), so a test neither depends on /etc/hosts nor reaches anything outside the lab.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.conftest import deadline


class BrowserError(AssertionError):
    """Chromium did not start, or the page did not do what was asked in time."""


@dataclass(frozen=True)
class Response:
    """One response the page received, as the browser's network log saw it."""

    url: str
    status: int
    remote_address: str
    kind: str  # Document, Image, Fetch, Script, ...
    headers: dict[str, str]


class Browser:
    """One headless Chromium with one page; resolve maps host names to addresses."""

    def __init__(self, profile: Path, resolve: dict[str, str], size: str = "1400,1400") -> None:
        chromium = shutil.which("chromium")
        if chromium is None:
            raise BrowserError("Chromium is not installed: run `make setup`")
        rules = ", ".join([*(f"MAP {h} {a}" for h, a in resolve.items()), "MAP * ~NOTFOUND"])
        self.process = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",  # the tests run as root
                "--disable-gpu",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--host-resolver-rules={rules}",
                f"--window-size={size}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._connection = contextlib.ExitStack()
        try:
            self.socket = self._attach(profile / "DevToolsActivePort")
            for domain in ("Page", "Network", "Runtime"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _attach(self, port_file: Path) -> ClientConnection:
        limit = time.monotonic() + deadline(20)
        while time.monotonic() < limit:
            if self.process.poll() is not None:
                raise BrowserError(f"Chromium exited with status {self.process.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = int(port_file.read_text().split()[0])
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
                page = next(p for p in pages if p["type"] == "page")
                return self._connection.enter_context(
                    connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
                )
            time.sleep(0.05)
        raise BrowserError("Chromium did not open its DevTools port within 20 s")

    def close(self) -> None:
        self._connection.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result; events meanwhile are kept."""
        self._next_id += 1
        ident = self._next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        limit = time.monotonic() + deadline(30)
        while time.monotonic() < limit:
            message = json.loads(self.socket.recv(timeout=max(0.01, limit - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)
        raise BrowserError(f"{method}: no answer within 30 s")

    def navigate(self, url: str) -> None:
        """Open URL and wait until the page fired its load event."""
        seen = len(self.events)
        self.call("Page.navigate", url=url)
        self.wait_for_event("Page.loadEventFired", after=seen, what=f"{url} loaded")

    def wait_for_event(self, method: str, *, after: int, what: str, within: float = 30) -> None:
        limit = time.monotonic() + deadline(within)
        while time.monotonic() < limit:
            if any(e["method"] == method for e in self.events[after:]):
                return
            self.evaluate("1")  # reads the events that arrived meanwhile
            time.sleep(0.05)
        raise BrowserError(f"not within {deadline(within):.0f} s: {what}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, within: float, what: str) -> Any:
        """Poll EXPRESSION until it is truthy (a page being replaced meanwhile is retried)."""
        limit = time.monotonic() + deadline(within)
        last: object = None
        while time.monotonic() < limit:
            try:
                value = self.evaluate(expression)
                if value:
                    return value
                last = value
            except BrowserError as exc:  # e.g. the page navigated during the evaluation
                last = exc
            time.sleep(0.1)
        raise BrowserError(f"not within {deadline(within):.0f} s: {what} (last: {last!r})")

    def set_files(self, selector: str, paths: list[Path]) -> None:
        """Choose PATHS in the file input SELECTOR, as a user picking files would."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        if not node:
            raise BrowserError(f"no element matches {selector!r}")
        self.call("DOM.setFileInputFiles", nodeId=node, files=[str(p) for p in paths])

    def responses(self) -> list[Response]:
        """Every response the page received so far, in order."""
        self.evaluate("1")
        found = []
        for event in self.events:
            if event["method"] != "Network.responseReceived":
                continue
            params = event["params"]
            reply = params["response"]
            found.append(
                Response(
                    url=reply["url"],
                    status=int(reply["status"]),
                    remote_address=reply.get("remoteIPAddress", ""),
                    kind=params.get("type", ""),
                    headers={k.lower(): str(v) for k, v in reply["headers"].items()},
                )
            )
        return found

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
