"""The server process behind ``--server-cmd``: real child processes, their logs, their shutdown; and the
openai engine's setup when the server cannot be reached or dies."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.openai import STAGE_SERVER_START, OpenAIEngine
from joulebench.engines.server import LogLine, ServerProcess, first_times, parse_command
from joulebench.errors import EngineError, UsageError
from joulebench.runner.marks import RecordingMarks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def wait_for_line(server: ServerProcess, text: str, timeout_s: float = 10.0) -> LogLine:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in server.lines():
            if text in line.text:
                return line
        time.sleep(0.02)
    pytest.fail(f"{text!r} never appeared in the server log: {server.tail()}")


def group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_log_lines_are_stamped_when_the_server_writes_them(tmp_path: Path) -> None:
    # print() without flush: the server's stdout is a file, so only PYTHONUNBUFFERED makes it timely.
    code = "import time; print('loading'); time.sleep(0.5); print('ready'); time.sleep(30)"
    server = ServerProcess(python(code), tmp_path / "server.log")
    spawn_s = server.start()
    try:
        ready = wait_for_line(server, "ready")
    finally:
        server.stop()
    names = {"loading": "load", "ready": "up", "absent": "never"}
    times = first_times(server.lines(), names.get)
    assert set(times) == {"load", "up"}
    assert times["up"] == ready.t_s
    assert spawn_s < times["load"] < times["up"]
    assert 0.4 < times["up"] - times["load"] < 2.0
    assert (tmp_path / "server.log").read_text().splitlines()[:2] == ["loading", "ready"]


def test_stop_sends_sigint_first(tmp_path: Path) -> None:
    code = (
        "import signal, sys, time\n"
        "def bye(*_):\n    print('got SIGINT'); sys.exit(0)\n"
        "signal.signal(signal.SIGINT, bye)\nprint('up')\ntime.sleep(30)\n"
    )
    server = ServerProcess(python(code), tmp_path / "server.log")
    server.start()
    wait_for_line(server, "up")
    assert server.stop() == 0
    assert "got SIGINT" in server.tail()


def test_stop_escalates_to_sigkill_for_the_whole_group(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('{name} up'); time.sleep(60)"
    )
    # The server forks a child that ignores the same signals, as an engine core process may.
    code = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {stubborn.format(name='child')!r}])\n"
        f"exec({stubborn.format(name='parent')!r})\n"
    )
    server = ServerProcess(python(code), tmp_path / "server.log")
    server.start()
    wait_for_line(server, "parent up")
    wait_for_line(server, "child up")
    pgid = server.pid
    assert pgid is not None and group_exists(pgid)
    t0 = time.monotonic()
    rc = server.stop(sigint_s=0.3, sigterm_s=0.3, sigkill_s=5.0)
    assert time.monotonic() - t0 >= 0.6  # it waited out SIGINT and SIGTERM before killing
    assert rc == -9
    assert not group_exists(pgid)
    assert server.stop() == -9  # a second stop is harmless


def test_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    # A worker killed with SIGKILL runs no cleanup; the kernel must still end the server it started.
    starter = (
        "import os, signal, sys\n"
        "from joulebench.engines.server import ServerProcess\n"
        "s = ServerProcess([sys.executable, '-c', 'import time; time.sleep(60)'], sys.argv[1])\n"
        "s.start()\n"
        "print(s.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    argv = [*python(starter), str(tmp_path / "s.log")]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert out.returncode == -9, out.stderr
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10.0
    while group_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_exists(pid)


def test_wait_until_timeout_stops_the_server(tmp_path: Path) -> None:
    server = ServerProcess(python("import time; print('starting'); time.sleep(60)"), tmp_path / "s.log")
    server.start()
    with pytest.raises(EngineError, match=r"did not answer within 0.5 s; .*starting"):
        server.wait_until(lambda: False, timeout_s=0.5)
    assert server.returncode is not None


def test_parse_command_splits_like_a_shell_and_rejects_bad_input() -> None:
    argv = parse_command("vllm serve 'my model' --port 8000")
    assert argv == ["vllm", "serve", "my model", "--port", "8000"]
    with pytest.raises(UsageError, match="cannot parse the server command"):
        parse_command("vllm serve 'unclosed")
    with pytest.raises(UsageError, match="empty"):
        parse_command("   ")


def test_unreachable_endpoint_is_a_usage_error() -> None:
    pytest.importorskip("httpx")
    endpoint = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there any more
    engine = OpenAIEngine(EngineConfig(model="m", options={"endpoint": endpoint}), RecordingMarks())
    with pytest.raises(UsageError) as info:
        engine.setup()
    assert info.value.exit_code == 2
    assert endpoint in str(info.value) and "\n" not in str(info.value)


def test_server_command_that_exits_at_once_is_an_engine_error(tmp_path: Path) -> None:
    pytest.importorskip("httpx")
    cmd = shlex.join(python("import sys; print('no model at that path'); sys.exit(3)"))
    options = {
        "endpoint": f"http://127.0.0.1:{free_port()}/v1",
        "server_cmd": cmd,
        "server_log": str(tmp_path / "server.log"),
    }
    marks = RecordingMarks()
    engine = OpenAIEngine(EngineConfig(model="m", options=options), marks)
    with pytest.raises(EngineError) as info:
        engine.setup()
    message = str(info.value)
    assert "exited with code 3" in message and "no model at that path" in message
    assert "\n" not in message
    assert marks.first(STAGE_SERVER_START) is None
    engine.close()


def test_missing_server_executable_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("httpx")
    options = {
        "endpoint": f"http://127.0.0.1:{free_port()}/v1",
        "server_cmd": "joulebench-no-such-server --port 1",
        "server_log": str(tmp_path / "server.log"),
    }
    engine = OpenAIEngine(EngineConfig(model="m", options=options), RecordingMarks())
    with pytest.raises(UsageError, match="server command not found: joulebench-no-such-server"):
        engine.setup()


def test_a_servers_log_goes_to_the_runs_log_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every --server-cmd run left its server's log in the temporary folder; a run's worker has the run's
    log folder in JOULEBENCH_LOG_DIR, and the log is kept there, beside the other logs of the run."""
    from joulebench.engines.openai import _temp_log_path
    from joulebench.runner.run import LOG_DIR_ENV

    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path))
    first, second = _temp_log_path(), _temp_log_path()
    assert first.parent == second.parent == tmp_path and first != second
    assert first.name.startswith("server-") and first.suffix == ".log"
