"""ComfyUI's real frontend in headless Chromium: a ComfyUI server with this pack (and nothing else) on a free
local port, and a Chrome DevTools Protocol session to drive the page. No browser-automation package: the
protocol's JSON over aiohttp's websocket client (aiohttp is one of ComfyUI's requirements)."""
from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "comfyui-attention-edit"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class ComfyServer:
    """`python main.py --cpu` with a base directory of its own whose custom_nodes holds only this pack."""

    def __init__(self, comfyui: Path, python: str = sys.executable):
        self.base = Path(tempfile.mkdtemp(prefix="attn-edit-frontend-"))
        (self.base / "custom_nodes").mkdir()
        (self.base / "custom_nodes" / PACK_NAME).symlink_to(REPO)
        settings = self.base / "user" / "default" / "comfy.settings.json"  # a returning user: no welcome dialog
        settings.parent.mkdir(parents=True)
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.base / "server.log", "w")
        self.proc = subprocess.Popen(
            [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port), "--disable-auto-launch",
             "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:"],
            cwd=comfyui, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                _get_json(self.url + "/api/system_stats")
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not answer in {timeout:.0f} s: {self.log_tail()}")

    def get(self, path: str):
        return _get_json(self.url + path)

    def log_tail(self, n: int = 3000) -> str:
        self.log.flush()
        return (self.base / "server.log").read_text(errors="replace")[-n:]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


class Page:
    """One headless Chromium tab, driven over the DevTools protocol."""

    def __init__(self, chromium: str, width: int = 1600, height: int = 1000):
        self.profile = Path(tempfile.mkdtemp(prefix="attn-edit-chromium-"))
        self.proc = subprocess.Popen(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []  # uncaught exceptions and console.error lines of the page
        self._id = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.loop.run_until_complete(self._connect())

    async def _connect(self, timeout: float = 60.0) -> None:
        import aiohttp

        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.2)
        port = port_file.read_text().split()[0]
        targets = _get_json(f"http://127.0.0.1:{port}/json/list")
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(ws_url, max_msg_size=0)
        self.reader = self.loop.create_task(self._read())
        for domain in ("Runtime", "Page"):
            await self._send(domain + ".enable")

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif data.get("method") == "Runtime.exceptionThrown":
                d = data["params"]["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
            elif data.get("method") == "Runtime.consoleAPICalled" and data["params"]["type"] == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                            for a in data["params"]["args"]))

    async def _send(self, method: str, **params):
        self._id += 1
        fut = self.loop.create_future()
        self._pending[self._id] = fut
        await self.ws.send_str(json.dumps({"id": self._id, "method": method, "params": params}))
        reply = await fut
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def send(self, method: str, timeout: float = 120.0, **params):
        return self.loop.run_until_complete(asyncio.wait_for(self._send(method, **params), timeout))

    def evaluate(self, expression: str, timeout: float = 120.0):
        """The value of a JavaScript expression (awaited when it is a promise), as JSON."""
        result = self.send("Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise RuntimeError(d.get("exception", {}).get("description") or d.get("text"))
        return result["result"].get("value")

    def call(self, function: str, *args, timeout: float = 120.0):
        """`(function)(...args)` with JSON arguments."""
        return self.evaluate(f"({function})(...{json.dumps(list(args))})", timeout=timeout)

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float = 120.0, what: str = "") -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.evaluate(f"!!({expression})", timeout=10):
                    return
            except RuntimeError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"the page never showed {what or expression}; page errors: {self.errors[-5:]}")

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        async def shut():
            self.reader.cancel()
            await self.ws.close()
            await self.session.close()
        try:
            self.loop.run_until_complete(shut())
        finally:
            self.loop.close()
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def open_frontend(server: ComfyServer, page: Page) -> None:
    """Load ComfyUI's page and wait until its app has a graph and knows this pack's nodes."""
    page.goto(server.url)
    page.wait_for("window.app && window.app.graph && window.LiteGraph && "
                  "LiteGraph.registered_node_types['AttnEdit_P2PReplace']", timeout=180,
                  what="ComfyUI's app with this pack's nodes registered")

