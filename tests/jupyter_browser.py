"""Drive a real JupyterLab in headless Chromium from the tests (offline, no leftover processes).

Typical use in a test::

    from tests.jupyter_browser import (guard_network, headless_chromium, require_browser,
                                       run_all_cells, running_jupyterlab)

    def test_notebook(tmp_path):
        require_browser()                       # skip, or fail when EXPLORER_REQUIRE_BROWSER=1
        (tmp_path / "nb.ipynb").write_text(...)
        with running_jupyterlab(tmp_path) as server, headless_chromium() as browser:
            context = browser.new_context()
            network = guard_network(context)    # records every request, aborts non-localhost ones
            page = context.new_page()
            run_all_cells(page, server.base_url, server.token, "nb.ipynb", timeout_s=60)
            ...
            assert network.non_local() == []

Every process the server starts (kernels included, although jupyter_client puts each kernel in a session of its
own) and every process Chromium starts carries a marker in its environment, so that leaving the context managers
can find, stop and report them from /proc even after they were re-parented.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # playwright is an optional test dependency; import it lazily
    from playwright.sync_api import Browser, BrowserContext, Page

__all__ = [
    "MARKER_ENV",
    "REQUIRE_ENV",
    "JupyterServer",
    "NetworkLog",
    "NotebookRunError",
    "dismiss_dialogs",
    "find_chromium",
    "guard_network",
    "headless_chromium",
    "is_local_url",
    "lab_url",
    "leftover_processes",
    "marked_processes",
    "notebook_state",
    "require_browser",
    "run_all_cells",
    "run_menu_command",
    "running_app",
    "running_jupyterlab",
    "server_api",
]

REQUIRE_ENV = "EXPLORER_REQUIRE_BROWSER"
MARKER_ENV = "EXPLORER_BROWSER_TEST_MARKER"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

# JupyterLab user settings for the test server: no news/update fetching (and no toast asking about it), no
# autosave (the notebook on disk changes only when a test saves it).
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}


# --------------------------------------------------------------------------------------------- availability


def find_chromium() -> str | None:
    """Path of a Chromium executable ($EXPLORER_CHROMIUM, else chromium / chromium-browser on PATH), or None."""
    explicit = os.environ.get("EXPLORER_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def require_browser() -> str:
    """Return Chromium's path if a real-browser test can run here; otherwise skip the test.

    With ``EXPLORER_REQUIRE_BROWSER=1`` (set by ``.ci/run``) a missing piece fails the test instead, so CI cannot
    pass by silently skipping it.
    """
    import pytest

    problems = []
    chromium = find_chromium()
    if chromium is None:
        problems.append("no Chromium executable (install the Debian package `chromium`, or set EXPLORER_CHROMIUM)")
    for module, package in (("playwright.sync_api", "playwright"), ("jupyterlab", "jupyterlab"),
                            ("ipykernel", "ipykernel")):
        try:
            __import__(module)
        except ImportError:
            problems.append(f"Python package {package!r} is not installed (pip install -e '.[test]')")
    if problems:
        message = "real-browser test cannot run: " + "; ".join(problems)
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} [{REQUIRE_ENV}=1 makes this a failure]", pytrace=False)
        pytest.skip(message)
    assert chromium is not None
    return chromium


# ----------------------------------------------------------------------------------------------- processes


def _process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]  # the field after "(comm)"


def marked_processes(marker: str) -> dict[int, str]:
    """Live (non-zombie) processes whose environment holds ``EXPLORER_BROWSER_TEST_MARKER=<marker>``: pid -> cmd.

    Linux only (reads /proc); returns {} elsewhere.
    """
    needle = f"{MARKER_ENV}={marker}".encode()
    found: dict[int, str] = {}
    if not os.path.isdir("/proc"):
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            if needle not in environ.split(b"\0"):
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if _process_state(pid) in (None, "Z", "X"):
            continue
        found[pid] = cmdline.strip()[:200]
    return found


_ISSUED_MARKERS: set[str] = set()


def _new_marker() -> str:
    marker = secrets.token_hex(8)
    _ISSUED_MARKERS.add(marker)
    return marker


def leftover_processes() -> dict[int, str]:
    """Live processes started by any server or browser of this module in this Python process: pid -> cmd."""
    found: dict[int, str] = {}
    for marker in _ISSUED_MARKERS:
        found.update(marked_processes(marker))
    return found


def _kill_marked(marker: str, grace_s: float = 5.0) -> dict[int, str]:
    """SIGTERM, then SIGKILL, every marked process; return those that had to be killed."""
    victims = marked_processes(marker)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in marked_processes(marker):
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
    return victims


def _assert_none_left(marker: str, what: str) -> None:
    deadline = time.monotonic() + 5.0
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        raise RuntimeError(f"{what} left processes behind: {left}")


# ----------------------------------------------------------------------------------------------- JupyterLab


@dataclass
class JupyterServer:
    """A running test JupyterLab: ``base_url`` like ``http://127.0.0.1:PORT`` (no trailing slash) and ``token``."""

    base_url: str
    token: str
    root: Path
    pid: int
    marker: str
    log_path: Path
    force_killed: dict[int, str] = field(default_factory=dict)  # filled on exit: what did not stop by itself

    def lab_url(self, notebook_relpath: str) -> str:
        return lab_url(self.base_url, self.token, notebook_relpath)

    def api(self, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> Any:
        """Call the REST API (``path`` like ``/api/kernels``) with the token; return the decoded JSON or None."""
        return server_api(self.base_url, self.token, method, path, body, timeout_s)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def server_api(base_url: str, token: str, method: str, path: str, body: Any = None, timeout_s: float = 10.0) -> Any:
    """Call a Jupyter server's REST API with the token; return the decoded JSON (None for an empty body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method,
                                     headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def lab_url(base_url: str, token: str, notebook_relpath: str) -> str:
    path = urllib.parse.quote(notebook_relpath.replace(os.sep, "/"))
    # ``reset`` starts from the default layout instead of restoring the tabs of an earlier page
    return f"{base_url}/lab/tree/{path}?reset&token={urllib.parse.quote(token)}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_lab_settings(settings_dir: Path, settings: dict[str, dict[str, Any]]) -> None:
    for plugin, values in settings.items():
        package, _, name = plugin.rpartition("/")
        target = settings_dir / package / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


@contextlib.contextmanager
def running_jupyterlab(root: Path, *, timeout_s: float = 90.0, log_path: Path | None = None,
                       lab_settings: dict[str, dict[str, Any]] | None = None,
                       extra_args: Sequence[str] = ()) -> Iterator[JupyterServer]:
    """Start ``jupyter lab`` serving ``root`` on 127.0.0.1 with a random token; yield a :class:`JupyterServer`.

    Quiet and offline-safe: no browser, no news or update checks, read-only extension manager (no PyPI), no
    terminals; user config, runtime, IPython and lab settings/workspace dirs are private temporaries (the data
    dir is left alone so the installed lab extensions are found). The server and everything it starts run in
    a new session and carry a marker in their environment. On exit: ``POST /api/shutdown`` (which shuts the
    kernels down), then SIGTERM/SIGKILL to the server's process group and to any marked process still alive
    (recorded in ``force_killed``); raises RuntimeError if any marked process survives.

    The server log goes to ``log_path`` (default: a file in the private temp dir, gone after exit).
    """
    root = Path(root).resolve()
    marker = _new_marker()
    with tempfile.TemporaryDirectory(prefix="explorer-jupyter-") as tmp_name:
        tmp = Path(tmp_name)
        settings_dir = tmp / "lab-settings"
        _write_lab_settings(settings_dir, {**LAB_SETTINGS, **(lab_settings or {})})
        log = Path(log_path) if log_path is not None else tmp / "jupyter.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        env = {
            **os.environ,
            MARKER_ENV: marker,
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "IPYTHONDIR": str(tmp / "ipython"),
            "JUPYTERLAB_SETTINGS_DIR": str(settings_dir),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("JUPYTER_TOKEN", None)
        proc = None
        server = None
        try:
            for _attempt in range(3):  # the free port can be taken between probing and binding: retry
                token = secrets.token_hex(24)
                port = _free_port()
                args = [
                    sys.executable, "-m", "jupyter", "lab",
                    "--no-browser",
                    f"--ServerApp.port={port}",
                    "--ServerApp.port_retries=0",
                    "--ServerApp.ip=127.0.0.1",
                    f"--IdentityProvider.token={token}",
                    f"--ServerApp.root_dir={root}",
                    "--ServerApp.allow_root=True",
                    "--ServerApp.terminals_enabled=False",
                    "--LabApp.news_url=None",
                    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                    "--LabApp.extension_manager=readonly",
                    f"--LabApp.user_settings_dir={settings_dir}",
                    f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
                    *extra_args,
                ]
                with open(log, "ab") as log_file:
                    proc = subprocess.Popen(args, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                base_url = f"http://127.0.0.1:{port}"
                server = JupyterServer(base_url, token, root, proc.pid, marker, log)
                if _wait_until_up(server, proc, timeout_s):
                    break
                _stop_server(server, proc)
                proc = server = None
            if server is None:
                tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
                raise RuntimeError(f"jupyter lab did not start within {timeout_s:.0f} s; log tail:\n{tail}")
            yield server
        finally:
            if server is not None and proc is not None:
                _stop_server(server, proc)
            else:
                _kill_marked(marker)
            _assert_none_left(marker, "jupyter lab")


def _wait_until_up(server: JupyterServer, proc: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            status = server.api("GET", "/api/status", timeout_s=2.0)
            if isinstance(status, dict) and "started" in status:
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            pass
        time.sleep(0.2)
    return False


def _stop_server(server: JupyterServer, proc: subprocess.Popen) -> None:
    """/api/shutdown (kernels first), then SIGTERM/SIGKILL to the server's process group, then marked leftovers."""
    if proc.poll() is None:
        with contextlib.suppress(Exception):
            server.api("POST", "/api/shutdown", timeout_s=20.0)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.force_killed[proc.pid] = "jupyter lab (did not exit after /api/shutdown)"
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(OSError):
                    os.killpg(proc.pid, sig)  # the group still exists: its leader is not reaped yet
                try:
                    proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
    # kernels live in sessions of their own; the marker finds them (and anything else), re-parented or not
    server.force_killed.update(_kill_marked(server.marker))


@contextlib.contextmanager
def running_app(cwd: Path, *args: str, timeout_s: float = 90.0) -> Iterator[str]:
    """Start ``python -m explorer app *args`` (Voila) in ``cwd`` on a free port; yield its page's URL.

    The server and its kernels carry a marker, as in `running_jupyterlab`; on exit every one is stopped, and a
    process that survives raises RuntimeError. The server's log is in the error if it does not come up."""
    marker = _new_marker()
    with tempfile.TemporaryDirectory(prefix="explorer-app-") as tmp_name:
        log = Path(tmp_name) / "voila.log"
        env = {**os.environ, MARKER_ENV: marker, "JUPYTER_CONFIG_DIR": str(Path(tmp_name) / "config"),
               "JUPYTER_RUNTIME_DIR": str(Path(tmp_name) / "runtime"), "PYTHONUNBUFFERED": "1"}
        port = _free_port()
        url = f"http://127.0.0.1:{port}/"
        try:
            with open(log, "wb") as log_file:
                proc = subprocess.Popen([sys.executable, "-m", "explorer", "app", *args, "--port", str(port),
                                         "--no-browser"], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + timeout_s
            while not _answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start; its log:\n{log.read_text(errors='replace')[-4000:]}")
                time.sleep(0.2)
            yield url
        finally:
            _kill_marked(marker)
            _assert_none_left(marker, "python -m explorer app")


def _answers(url: str) -> bool:
    """The server at ``url`` answers a request for its base (without running the page: that starts a kernel)."""
    try:
        with urllib.request.urlopen(url + "api/status", timeout=2.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer: the server is up
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


# ----------------------------------------------------------------------------------------------- Chromium


@contextlib.contextmanager
def headless_chromium(executable: str | None = None, *, args: Sequence[str] = ()) -> Iterator[Browser]:
    """Launch headless Chromium (the system one, never a downloaded browser) through Playwright; yield the Browser.

    On exit the browser and the Playwright driver are closed and no Chromium process may remain (RuntimeError).
    """
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError("no Chromium executable found (see require_browser())")
    marker = _new_marker()
    env = {**os.environ, MARKER_ENV: marker}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                                 args=[*CHROMIUM_ARGS, *args], env=env)
            try:
                yield browser
            finally:
                with contextlib.suppress(Exception):
                    browser.close()
    finally:
        deadline = time.monotonic() + 10.0  # crashpad handlers and renderers exit shortly after the browser
        while marked_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _kill_marked(marker)
        if left:
            raise RuntimeError(f"Chromium left processes behind (now killed): {left}")


# ------------------------------------------------------------------------------------------------- network


def is_local_url(url: str) -> bool:
    """True for http(s)/ws(s) URLs to 127.0.0.1 / localhost / ::1 and for data:, blob:, about: URLs."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("data", "blob", "about"):
        return True
    return parsed.scheme in ("http", "https", "ws", "wss") and (parsed.hostname or "") in LOCAL_HOSTS


@dataclass
class NetworkLog:
    """Every URL the pages of a context requested (HTTP and WebSocket), in order."""

    urls: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def non_local(self) -> list[str]:
        return [url for url in self.urls if not is_local_url(url)]


def guard_network(context: BrowserContext, *, block: bool = True) -> NetworkLog:
    """Record every request of ``context`` (call before opening pages); with ``block``, abort non-local ones.

    Blocking makes a machine with internet behave like the offline CI machine, and the log still shows the
    attempt, so ``assert log.non_local() == []`` catches e.g. BokehJS fetched from cdn.bokeh.org.
    """
    log = NetworkLog()
    context.on("request", lambda request: log.urls.append(request.url))
    context.on("page", lambda page: page.on("websocket", lambda ws: log.urls.append(ws.url)))

    def route(route_: Any) -> None:
        url = route_.request.url
        if is_local_url(url):
            route_.fallback()
        else:
            log.blocked.append(url)
            route_.abort("blockedbyclient")

    if block:
        context.route("**/*", route)
    return log


# ------------------------------------------------------------------------------------------------ notebook


class NotebookRunError(AssertionError):
    """A notebook did not run to completion in the browser, or a cell produced an error."""



# JS evaluated in the page: the state of the notebook that is on screen.
# JS evaluated in the page: the state of the notebook on screen. JupyterLab renders tracebacks with the stderr
# mime type, like stream output to stderr; a traceback is told from a warning by its text.
_NOTEBOOK_STATE_JS = r"""() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return null;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim());
  const traceback = /Traceback \(most recent call last\)|^\w*(Error|Exception)\b/m;
  const errors = [...panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent).filter(t => traceback.test(t)).map(t => t.slice(-3000));
  return {status: indicator ? indicator.getAttribute('data-status') : null, prompts, errors};
}"""


def dismiss_dialogs(page: Page) -> int:
    """Accept any modal dialog (e.g. kernel selection) and close notification toasts; return how many."""
    closed = 0
    for selector in (".jp-Dialog .jp-Dialog-button.jp-mod-accept", ".jp-Notification-Toast-Close",
                     ".Toastify__close-button"):
        for handle in page.query_selector_all(selector):
            with contextlib.suppress(Exception):
                handle.click(timeout=2000)
                closed += 1
    return closed


def notebook_state(page: Page) -> dict[str, Any] | None:
    """The notebook on screen: ``{"status": "idle" | "busy" | ..., "prompts": ["[1]:", "[*]:", "[ ]:", ...],
    "errors": [traceback texts]}`` (one prompt per code cell), or None when no notebook is open."""
    return page.evaluate(_NOTEBOOK_STATE_JS)


def _wait_for(page: Page, what: str, predicate, timeout_s: float, poll_s: float = 0.25) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        dismiss_dialogs(page)
        state = notebook_state(page)
        if state is not None and predicate(state):
            return state
        page.wait_for_timeout(poll_s * 1000)
    raise NotebookRunError(f"timed out after {timeout_s:.0f} s waiting for {what}; last notebook state: {state}")


def run_menu_command(page: Page, menu: str, label: str) -> None:
    """Click ``menu`` in JupyterLab's menu bar, then its item labelled ``label`` (e.g. "Run", "Run All Cells")."""
    page.keyboard.press("Escape")  # close any menu that is already open
    page.locator(".lm-MenuBar-item", has=page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(
        rf"^{re.escape(menu)}$"))).first.click()
    item = page.locator(".lm-Menu:not(.lm-mod-hidden) .lm-Menu-item", has=page.locator(
        ".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(label)}$"))).first
    item.wait_for(state="visible", timeout=10_000)
    item.click()


def _kernel_ready(base_url: str, token: str, notebook_relpath: str) -> bool:
    """The notebook's session has a kernel that is idle and has a client connected (the page's websocket)."""
    with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        for session in server_api(base_url, token, "GET", "/api/sessions"):
            kernel = session.get("kernel") or {}
            if (session.get("path") == notebook_relpath and kernel.get("execution_state") == "idle"
                    and kernel.get("connections", 0) >= 1):
                return True
    return False


def run_all_cells(page: Page, base_url: str, token: str, notebook_relpath: str, timeout_s: float = 120.0, *,
                  raise_on_error: bool = True) -> dict[str, Any]:
    """Open ``notebook_relpath`` in JupyterLab, run all cells and wait until every code cell has run.

    Opens ``{base_url}/lab/tree/{path}?reset&token=...`` and waits until the kernel is idle both on the page and
    for the server (session with a connected kernel: JupyterLab silently skips cells run before its session
    has a kernel); clears the outputs if the notebook was saved with execution counts; clicks Run > Run All
    Cells (again if no cell started within 10 s); then waits until every non-empty code cell (per the file on
    disk; JupyterLab does not run empty ones) shows an execution count ``[n]:`` and the kernel is idle again.
    Dialogs are accepted and toasts closed on the way. Raises NotebookRunError on a timeout, or
    (``raise_on_error``) as soon as a cell's output is an error (traceback). Returns the final
    :func:`notebook_state`. Widgets render asynchronously after this returns: wait for what you need.
    """
    deadline = time.monotonic() + timeout_s
    relpath = notebook_relpath.replace(os.sep, "/")

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    content = server_api(base_url, token, "GET", "/api/contents/" + urllib.parse.quote(relpath) + "?content=1")
    code_cells = [c for c in content["content"]["cells"] if c["cell_type"] == "code"]
    expected = [i for i, cell in enumerate(code_cells) if "".join(cell["source"]).strip()]

    page.goto(lab_url(base_url, token, relpath), wait_until="domcontentloaded", timeout=left() * 1000)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").first.wait_for(state="visible",
                                                                                      timeout=left() * 1000)
    state = _wait_for(page, "the kernel to start",
                      lambda s: s["status"] == "idle" and len(s["prompts"]) == len(code_cells)
                      and _kernel_ready(base_url, token, relpath), left())
    if any(re.fullmatch(r"\[\d+\]:", p) for p in state["prompts"]):
        run_menu_command(page, "Edit", "Clear Outputs of All Cells")
        _wait_for(page, "outputs to clear", lambda s: not any(re.fullmatch(r"\[\d+\]:", p) for p in s["prompts"]),
                  left())

    def started(s: dict[str, Any]) -> bool:
        return any(s["prompts"][i] != "[ ]:" for i in expected)

    def settled(s: dict[str, Any]) -> bool:  # idle and nothing queued: all ran, or the rest was aborted
        return s["status"] == "idle" and all(s["prompts"][i] != "[*]:" for i in expected)

    for attempt in range(3):
        run_menu_command(page, "Run", "Run All Cells")
        try:
            _wait_for(page, "a cell to start", started, min(10.0, left()))
            break
        except NotebookRunError:
            if attempt == 2 or left() <= 1.0:
                raise
    state = _wait_for(page, "all cells to run", lambda s: settled(s) or (raise_on_error and bool(s["errors"])),
                      left())
    skipped = [i for i in expected if not re.fullmatch(r"\[\d+\]:", state["prompts"][i])]
    if raise_on_error and (state["errors"] or skipped):
        raise NotebookRunError(f"the notebook did not run cleanly (code cells not run: {skipped}):\n"
                               + "\n---\n".join(state["errors"]))
    return state
