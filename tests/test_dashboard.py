"""``gaia dashboard``: the page, its JSON API and its event stream, served for two in-process nodes.

Real sockets on 127.0.0.1, real nodes (one submits, one serves), a real aiohttp server; the page itself
is checked in headless Chromium (driven by selenium) when a browser is installed.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from inprocess import build_node, load_plugins, make_home, running, wait_for
from nodes import call, echo_tasks, slow_tasks, submit, wait_job

from gaia_core.config import Home
from gaia_core.dashboard import server as server_mod
from gaia_core.dashboard.logtail import TAIL_BYTES, FileTail, RingHandler
from gaia_core.dashboard.security import CSRF_HEADER, HEADERS
from gaia_core.dashboard.server import MAX_CONNECTIONS, MAX_STREAMS, STATIC, Dashboard
from gaia_core.errors import UsageError
from gaia_core.node import Node

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "img"


class Nodes:
    """The submitting node (whose dashboard is served), the worker it knows, and the dashboard."""

    def __init__(self, submitter: Node, worker: Node, board: Dashboard) -> None:
        self.submitter, self.worker, self.board = submitter, worker, board
        self.home: Home = submitter.context.home


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    root = tmp_path_factory.mktemp("dashboard")
    gaia_log = logging.getLogger("gaia")
    level, ring = gaia_log.level, RingHandler().attach()  # both nodes log here, from their start
    gaia_log.setLevel(logging.INFO)
    try:
        worker = build_node(make_home(root, "worker"), load_plugins())
        with running(worker, drain_s=5.0):
            home = make_home(root, "submitter", {"network": {"bootstrap": [worker.address]}})
            with running(build_node(home, load_plugins()), drain_s=5.0) as submitter:
                wait_for(lambda: worker.node_id in submitter.peer_records, timeout=30, what="the peers to meet")
                board = Dashboard(home, interval=0.3, actions=True, logs=ring)
                board.start()
                try:
                    yield Nodes(submitter, worker, board)
                finally:
                    board.stop()
    finally:
        ring.detach()
        gaia_log.setLevel(level)


def request(board: Dashboard, path: str, *, method: str = "GET", token: str | None = "",
            headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, str]:
    """One HTTP request to ``board``: its status, headers and text. ``token=""`` sends the board's own
    token (as a bearer), ``None`` none."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token or board.guard.token}"
    connection = http.client.HTTPConnection("127.0.0.1", board.guard.port, timeout=10)
    try:
        connection.request(method, path, headers=sent)
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def api(board: Dashboard, path: str) -> Any:
    status, _, text = request(board, path)
    assert status == 200, text
    return json.loads(text)


# ---------------------------------------------------------------- security


def test_every_request_needs_the_token(nodes: Nodes) -> None:
    board = nodes.board
    for path in ("/", "/api/status", "/api/events", "/static/app.js"):
        status, _, text = request(board, path, token=None)
        assert status == 403 and text.count("\n") == 1 and "token" in text, (path, text)
    for wrong in ("nope", board.guard.token[:-1], "%C3%A9t%C3%A9"):
        status, _, text = request(board, f"/api/status?token={wrong}", token=None)
        assert status == 403 and "missing or wrong token" in text
    status, _, text = request(board, "/api/status", token="\u00e9t\u00e9")  # not ASCII: refused, not a crash
    assert status == 403 and "missing or wrong token" in text


def test_the_printed_url_sets_a_strict_cookie_and_leaves_the_address_bar(nodes: Nodes) -> None:
    board = nodes.board
    assert board.url.startswith("http://127.0.0.1:") and board.url.endswith(board.guard.token)
    status, headers, _ = request(board, "/?" + board.url.split("?", 1)[1], token=None)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"{board.guard.cookie}={board.guard.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": f"{board.guard.cookie}={board.guard.token}"}
    status, headers, page = request(board, "/", token=None, headers=jar)
    assert status == 200 and board.guard.csrf in page
    for name, value in HEADERS.items():
        assert headers[name] == value
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "http" not in page.replace(board.guard.origin, "").split("<body>")[0]  # nothing from another site


def test_two_dashboards_in_one_browser_keep_their_own_cookies(nodes: Nodes) -> None:
    """Cookies are per host, not per port: a browser that opened two dashboards (a devnet's nodes) sends
    both cookies to each; each must still find its own token."""
    other = Dashboard(nodes.home)
    other.start()
    try:
        jar = "; ".join(f"{b.guard.cookie}={b.guard.token}" for b in (nodes.board, other))
        for board in (nodes.board, other):
            status, _, text = request(board, "/api/status", token=None, headers={"Cookie": jar})
            assert status == 200, text
    finally:
        other.stop()


def test_a_foreign_host_header_is_refused(nodes: Nodes) -> None:
    """A web page that rebinds its own name to 127.0.0.1 sends its name as Host: refused."""
    status, _, text = request(nodes.board, "/api/status", headers={"Host": f"evil.example:{nodes.board.guard.port}"})
    assert status == 403 and "unexpected Host" in text


def test_another_loopback_address_is_guarded_as_127_0_0_1(nodes: Nodes) -> None:
    """--host 127.0.0.2 is loopback too: a rebinding site's Host is refused there, the bound address is not."""
    board = Dashboard(nodes.home, host="127.0.0.2")
    board.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.2", board.guard.port, timeout=10)
        for host, expected in (("evil.example", 403), ("127.0.0.2", 200)):
            connection.request("GET", "/api/logs", headers={"Host": f"{host}:{board.guard.port}",
                                                            "Authorization": f"Bearer {board.guard.token}"})
            response = connection.getresponse()
            assert (response.status, host) == (expected, host), response.read()
            response.read()
        connection.close()
    finally:
        board.stop()


def test_actions_need_the_csrf_token_and_the_page_origin(nodes: Nodes) -> None:
    board = nodes.board
    job = submit(nodes.home, slow_tasks(nodes.submitter.node_id, 12), name="to-cancel")
    path = f"/api/jobs/{job}/cancel"
    status, _, text = request(board, path, method="POST")
    assert status == 403 and "cross-site" in text
    status, _, _ = request(board, path, method="POST",
                           headers={CSRF_HEADER: board.guard.csrf, "Origin": "http://evil.example"})
    assert status == 403
    assert call(nodes.home, "job", job=job)["status"] == "running"
    status, _, text = request(board, path, method="POST",
                              headers={CSRF_HEADER: board.guard.csrf, "Origin": board.guard.origin})
    assert status == 200, text
    answer = json.loads(text)
    assert answer.keys() == {"job", "status", "cancelled", "tasks"}  # what `gaia task cancel --json` prints
    assert answer["job"] == job and answer["status"] == "cancelled"
    localhost = f"localhost:{board.guard.port}"  # a page opened at http://localhost:PORT sends that origin
    job = submit(nodes.home, slow_tasks(nodes.submitter.node_id, 12), name="to-cancel-at-localhost")
    status, _, text = request(board, f"/api/jobs/{job}/cancel", method="POST",
                              headers={"Host": localhost, CSRF_HEADER: board.guard.csrf, "Origin": f"http://{localhost}"})
    assert status == 200 and json.loads(text)["status"] == "cancelled", text
    status, _, text = request(board, "/api/jobs/nosuchjob/cancel", method="POST",
                              headers={CSRF_HEADER: board.guard.csrf})
    assert status == 400 and "nosuchjob" in json.loads(text)["error"]


def test_a_read_only_dashboard_refuses_every_action(nodes: Nodes) -> None:
    board = Dashboard(nodes.home)
    board.start()
    try:
        status, _, text = request(board, "/api/jobs/x/cancel", method="POST", headers={CSRF_HEADER: board.guard.csrf})
        assert status == 403 and "read-only" in text
    finally:
        board.stop()


def test_a_port_in_use_is_one_line(nodes: Nodes) -> None:
    with pytest.raises(UsageError, match="cannot listen on 127.0.0.1:") as caught:
        Dashboard(nodes.home, port=nodes.board.guard.port).start()
    assert "choose another port" in str(caught.value)


@contextmanager
def _all_pages_open(board: Dashboard) -> Iterator[None]:
    """As many event streams open as the dashboard serves (the pages of earlier tests closed first)."""
    opened = []
    wait_for(lambda: not board.hub.streams, timeout=10, what="the pages of earlier tests to close")
    try:
        for _ in range(MAX_STREAMS):
            connection = http.client.HTTPConnection("127.0.0.1", board.guard.port, timeout=10)
            connection.request("GET", "/api/events", headers={"Authorization": f"Bearer {board.guard.token}"})
            opened.append(connection)
            assert connection.getresponse().status == 200
        yield
    finally:
        for connection in opened:
            connection.close()


def test_open_pages_are_bounded(nodes: Nodes) -> None:
    with _all_pages_open(nodes.board):
        status, _, text = request(nodes.board, "/api/events")
        assert status == 503 and f"{MAX_STREAMS} dashboard pages are open already" in text


def _raw(board: Dashboard, data: bytes) -> bytes:
    """Send ``data`` as it is and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", board.guard.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_malformed_request_is_a_400_and_no_traceback_in_the_log(nodes: Nodes,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """No token needed to send one: a traceback logged for each would let any local process fill the node's log."""
    with caplog.at_level(logging.DEBUG):
        too_long = _raw(nodes.board, b"GET /api/status?x=" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        garbage = _raw(nodes.board, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
    assert too_long.startswith(b"HTTP/1.0 400") and garbage.startswith(b"HTTP/1.0 400")
    logged = [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert not logged, [r.getMessage() for r in logged]


def test_idle_connections_are_bounded(tmp_path: Path) -> None:
    """Sockets held open without a request (no token needed) cannot use up the node's file descriptors."""
    board = Dashboard(Home(tmp_path))
    board.start()
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(socket.create_connection(("127.0.0.1", board.guard.port), timeout=10))
        wait_for(lambda: len(board._runner.server.connections) == MAX_CONNECTIONS if board._runner and
                 board._runner.server else False, timeout=10, what="the connections accepted")
        assert _raw(board, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 503")
        for sock in held:
            sock.close()
        held.clear()
        wait_for(lambda: request(board, "/api/logs")[0] == 200, timeout=10, what="the dashboard to serve again")
    finally:
        for sock in held:
            sock.close()
        board.stop()


def test_a_node_that_stops_is_said_to_be_gone_at_the_first_call(tmp_path: Path) -> None:
    """The connection to a node that stopped breaks: that call already says no node runs (503), as the next do."""
    home = make_home(tmp_path, "brief")
    board = Dashboard(home)
    try:
        with running(build_node(home, load_plugins()), drain_s=1.0):
            board.start()
            assert request(board, "/api/status")[0] == 200
        status, _, text = request(board, "/api/status")
        assert status == 503 and "no node is running" in json.loads(text)["error"], text
    finally:
        board.stop()


def test_an_idle_connection_is_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kept alive after its request and then idle: closed after IDLE_S (a browser's pool cannot fill the bound)."""
    monkeypatch.setattr(server_mod, "IDLE_S", 0.5)
    board = Dashboard(Home(tmp_path))
    board.start()
    try:
        with socket.create_connection(("127.0.0.1", board.guard.port), timeout=10) as sock:
            sock.sendall(f"GET /api/logs HTTP/1.1\r\nHost: 127.0.0.1:{board.guard.port}\r\n"
                         f"Authorization: Bearer {board.guard.token}\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):  # ends when the server closes; the timeout fails the test
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"lines":[]}')
    finally:
        board.stop()


def test_without_a_node_the_api_and_the_page_say_so(tmp_path: Path) -> None:
    board = Dashboard(Home(tmp_path), interval=0.2)
    board.start()
    try:
        status, _, text = request(board, "/api/status")
        assert status == 503 and "no node is running" in json.loads(text)["error"]
        assert board.feed.snapshot()["error"].startswith("no node is running")
    finally:
        board.stop()


# ---------------------------------------------------------------- the API is the control socket's


def test_the_api_answers_what_the_cli_json_prints(nodes: Nodes) -> None:
    board, home = nodes.board, nodes.home
    job = submit(home, echo_tasks([b"a", b"b"], nodes.submitter.node_id), name="api-job")
    wait_job(home, job, timeout=60)
    status = api(board, "/api/status")
    assert status.keys() == call(home, "status").keys() and status["node_id"] == nodes.submitter.node_id
    peers = api(board, "/api/peers")
    assert [p["node_id"] for p in peers] == [p["node_id"] for p in call(home, "peers")]
    for peer in peers:  # the spot-check policy's trust in each peer
        assert peer["trust"].keys() == {"streak", "trusted", "check_rate"} and 0 <= peer["trust"]["check_rate"] <= 1
    assert api(board, "/api/jobs?limit=5") == call(home, "jobs", limit=5)
    assert api(board, "/api/rewards") == call(home, "rewards")
    assert api(board, "/api/monitor").keys() == call(home, "sample").keys()
    assert isinstance(api(board, "/api/logs")["lines"], list)
    for bad in ("0", "x", "1001", "-1", "%C2%B2", "9" * 5000):  # "²" is a digit to str.isdigit, not to int
        code, _, text = request(board, f"/api/jobs?limit={bad}")
        assert code == 400 and "limit must be" in text


def test_the_event_stream_sends_history_then_updates(nodes: Nodes) -> None:
    board = nodes.board
    connection = http.client.HTTPConnection("127.0.0.1", board.guard.port, timeout=10)
    try:
        connection.request("GET", "/api/events", headers={"Authorization": f"Bearer {board.guard.token}"})
        response = connection.getresponse()
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        events: list[str] = []
        deadline = time.monotonic() + 20
        while len([e for e in events if e.startswith("data:")]) < 3 and time.monotonic() < deadline:
            line = response.fp.readline().decode().strip()
            if line.startswith(("event:", "data:")):
                events.append(line)
    finally:
        connection.close()
    assert events[0] == "event: history"
    updates = [json.loads(e.removeprefix("data: ")) for e in events[2:] if e.startswith("data:")]
    assert len(updates) >= 2 and updates[-1]["at"] > updates[0]["at"]
    assert updates[-1]["status"]["node_id"] == nodes.submitter.node_id
    assert {"cpu", "ram", "earned", "granted"} <= updates[-1]["point"].keys()
    assert any(" INFO " in line for line in updates[-1]["logs"])  # as `gaia logs` prints them, not JSON


def test_an_update_that_fails_is_on_the_page_and_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A node whose answers the dashboard cannot read (another version): each update says so, the log once."""
    board = Dashboard(Home(tmp_path), interval=0.2)

    def unreadable() -> dict[str, Any]:
        raise KeyError("rewards")

    monkeypatch.setattr(board.feed, "snapshot", unreadable)
    board.start()
    connection = http.client.HTTPConnection("127.0.0.1", board.guard.port, timeout=10)
    try:
        with caplog.at_level(logging.INFO, logger="gaia.dashboard"):
            connection.request("GET", "/api/events", headers={"Authorization": f"Bearer {board.guard.token}"})
            response = connection.getresponse()
            errors = []
            deadline = time.monotonic() + 20
            while len(errors) < 4 and time.monotonic() < deadline:
                line = response.fp.readline().decode()
                if line.startswith("data: ") and "error" in (update := json.loads(line.removeprefix("data: "))):
                    errors.append(update["error"])
    finally:
        connection.close()
        board.stop()
    assert len(errors) == 4 and all("could not read the node: 'rewards'" in e for e in errors)
    assert [r.getMessage() for r in caplog.records if r.name == "gaia.dashboard"] == ["dashboard update failed"]


def test_the_page_files_are_served_and_shipped_in_the_wheel() -> None:
    """Each file of static/ is served, and matched by gaia-core's package data (a subfolder would not be)."""
    static = ROOT / "gaia_core" / "dashboard" / "static"
    files = {p.relative_to(static).as_posix() for p in static.rglob("*") if p.is_file()}
    assert files == {*STATIC, "index.html"}
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gaia_core"]
    for name in files:
        assert any(PurePosixPath("dashboard/static", name).match(pattern) for pattern in patterns), name


# ---------------------------------------------------------------- log tail


def test_the_file_tail_drops_the_cut_line(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    assert FileTail(log).lines() == []
    log.write_text("".join(f'{{"n": {i}, "pad": "{"x" * 90}"}}\n' for i in range(2 * TAIL_BYTES // 100)))
    lines = FileTail(log, size=10_000).lines()
    assert all(json.loads(line) for line in lines) and json.loads(lines[-1])["n"] == 2 * TAIL_BYTES // 100 - 1


def test_the_ring_handler_keeps_the_latest_records() -> None:
    ring = RingHandler(size=3).attach()
    try:
        for i in range(5):
            logging.getLogger("gaia.test").warning("line %d", i)
    finally:
        ring.detach()
    assert [json.loads(line)["msg"] for line in ring.lines()] == ["line 2", "line 3", "line 4"]


# ---------------------------------------------------------------- the commands


def test_gaia_dashboard_without_a_node_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "gaia_core", "--home", str(tmp_path), "dashboard"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 8 and "no node is running" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0


def _first_line_url(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """The port and token of the ``dashboard: URL`` line a command printed first."""
    assert proc.stdout is not None
    killer = threading.Timer(60, proc.kill)  # a command that never prints ends the read
    killer.start()
    try:
        line = proc.stdout.readline()
    finally:
        killer.cancel()
    assert line.startswith("dashboard: http://127.0.0.1:"), line
    url = line.split()[1]
    return int(url.split(":")[2].split("/")[0]), url.split("token=")[1]


def _get(port: int, token: str, path: str) -> Any:
    """JSON of a GET with the token, or None unless it answered 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    finally:
        connection.close()


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise


def test_gaia_dashboard_serves_the_running_node_until_stopped(nodes: Nodes) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(nodes.home.root), "dashboard"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        port, token = _first_line_url(proc)
        assert _get(port, token, "/api/status")["node_id"] == nodes.submitter.node_id
    finally:
        code = _stop(proc)
    assert code == 0 and proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_gaia_node_dashboard_on_a_port_in_use_is_one_line(nodes: Nodes, tmp_path: Path) -> None:
    home = make_home(tmp_path, "busy")
    proc = subprocess.run([sys.executable, "-m", "gaia_core", "--home", str(home.root), "node", "--dashboard",
                           "--dashboard-port", str(nodes.board.guard.port)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "the dashboard cannot listen on 127.0.0.1:" in proc.stderr
    assert "Traceback" not in proc.stderr and "node started" not in proc.stderr


def test_gaia_node_dashboard_serves_the_node_it_runs(tmp_path: Path) -> None:
    home = make_home(tmp_path, "solo")
    proc = subprocess.Popen([sys.executable, "-m", "gaia_core", "--home", str(home.root), "node", "--dashboard"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, stdin=subprocess.DEVNULL)
    try:
        port, token = _first_line_url(proc)  # printed before the node starts
        answer = wait_for(lambda: _get(port, token, "/api/status"), timeout=60, what="the node behind the dashboard")
        assert answer["name"] == "solo"
    finally:
        code = _stop(proc)
    assert code == 0
    with pytest.raises(OSError):  # the dashboard went with the node
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# ---------------------------------------------------------------- in a real browser


def _browser() -> tuple[str, str] | None:
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    return (binary, driver) if binary and driver else None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    found = _browser()
    if found is None:
        pytest.skip("no browser installed: the page is tested in headless Chromium (.ci/ensure-browser "
                    "installs chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1500", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def _screenshot(driver: Any, directory: Path, name: str) -> None:
    """Save a screenshot under ``directory``; also into docs/img when GAIA_UPDATE_SCREENSHOTS=1."""
    driver.save_screenshot(str(directory / name))
    if os.environ.get("GAIA_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(exist_ok=True)
        shutil.copyfile(directory / name, SCREENSHOTS / name)


def test_the_page_shows_jobs_and_peers_and_follows_a_job_to_its_end(nodes: Nodes, browser: Any,
                                                                      tmp_path: Path) -> None:
    board, home = nodes.board, nodes.home
    browser.get(board.url)
    assert browser.current_url == f"{board.guard.origin}/"  # the token left the address bar
    wait_for(lambda: nodes.worker.node_id[:16] in _text(browser, "#peers"), timeout=20, what="the peer on the page")
    assert "up" in _text(browser, "#peers") and "streak" in _text(browser, "#peers")
    assert nodes.submitter.node_id in _text(browser, "#node-line")
    browser.execute_script("window.gaiaMarker = 1")
    job = submit(home, slow_tasks(nodes.submitter.node_id, 6), name="page-job")
    wait_for(lambda: job[:16] in _text(browser, "#jobs"), timeout=20, what="the job on the page")
    assert wait_job(home, job, timeout=120)["tasks"] == {"done": 6}
    wait_for(lambda: "finished" in next(row for row in _text(browser, "#jobs").splitlines() if job[:16] in row),
             timeout=20, what="the page to show the job finished")
    assert browser.execute_script("return window.gaiaMarker") == 1  # updated live, not reloaded
    wait_for(lambda: "earned" in _text(browser, "#rewards") or "granted" in _text(browser, "#rewards"),
             timeout=20, what="the rewards on the page")
    assert "node started" in _text(browser, "#logs")
    _screenshot(browser, tmp_path, "dashboard.png")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_the_page_cancels_a_job_with_its_csrf_token(nodes: Nodes, browser: Any) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    board = nodes.board
    browser.get(board.url)
    job = submit(nodes.home, slow_tasks(nodes.submitter.node_id, 12), name="cancel-from-page")

    def click_cancel() -> bool:
        try:  # the rows are redrawn as the job's counts change: a row found may be gone by the click
            rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "#jobs tbody tr") if job[:16] in r.text]
            buttons = rows[0].find_elements(By.TAG_NAME, "button") if rows else []
            if buttons:
                buttons[0].click()
            return bool(buttons)
        except StaleElementReferenceException:
            return False

    wait_for(click_cancel, timeout=20, what="the job's cancel button")
    wait_for(lambda: call(nodes.home, "job", job=job)["status"] == "cancelled", timeout=20, what="the job cancelled")
    wait_for(lambda: "cancelled" in next(r for r in _text(browser, "#jobs").splitlines() if job[:16] in r),
             timeout=20, what="the page to show the job cancelled")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_a_peers_name_is_text_never_markup(nodes: Nodes, browser: Any, tmp_path: Path) -> None:
    """A peer chooses its own name: one that is HTML shows as those characters and runs nothing."""
    hostile = '<img src=x onerror="window.gaiaPwned=1"><b>bold</b>'
    home = make_home(tmp_path, "hostile", {"node": {"name": hostile},
                                           "network": {"bootstrap": [nodes.submitter.address]}})
    with running(build_node(home, load_plugins()), drain_s=2.0):
        browser.get(nodes.board.url)
        wait_for(lambda: hostile in _text(browser, "#peers"), timeout=30, what="the hostile name, as text")
        assert browser.execute_script("return window.gaiaPwned === undefined && !document.querySelector('#peers img')")
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_the_browser_is_refused_without_the_token(nodes: Nodes, browser: Any, tmp_path: Path) -> None:
    browser.delete_all_cookies()
    browser.get(f"{nodes.board.guard.origin}/")
    assert _text(browser, "body").startswith("403 Forbidden: missing or wrong token")
    _screenshot(browser, tmp_path, "dashboard-refused.png")


def test_the_page_says_why_its_event_stream_was_refused(nodes: Nodes, browser: Any) -> None:
    """16 pages open already: the 17th says so (not 'open the URL again', which would not help)."""
    with _all_pages_open(nodes.board):
        browser.get(nodes.board.url)
        wait_for(lambda: "too many pages" in _text(browser, "#live"), timeout=20, what="the page to say why")
