"""joulebench.stage() and the stage-file protocol (docs/stage-protocol.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import joulebench
from joulebench.errors import UsageError
from joulebench.measurement.markers import STAGE_FILE_ENV
from joulebench.measurement.stagefile import StageFileFollower, parse_stage_line


class Recorder:
    def __init__(self) -> None:
        self.marks: list[tuple[str, str, float | None]] = []

    def begin(self, name: str, t_s: float | None = None) -> None:
        self.marks.append(("begin", name, t_s))

    def end(self, name: str, t_s: float | None = None) -> None:
        self.marks.append(("end", name, t_s))

    def span(self, name: str, start_s: float, end_s: float) -> None:
        raise AssertionError("not used")


def test_stage_writes_protocol_lines_with_monotonic_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stages"
    monkeypatch.setenv(STAGE_FILE_ENV, str(path))
    before = time.monotonic()
    with joulebench.stage("model_load"):
        pass
    lines = path.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [["begin", "model_load"], ["end", "model_load"]]
    parsed = [parse_stage_line(line) for line in lines]
    assert all(p is not None and p.t_s is not None and before <= p.t_s <= time.monotonic() for p in parsed)


def test_stage_without_listener_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(STAGE_FILE_ENV, raising=False)
    with joulebench.stage("anything"):
        value = 42
    assert value == 42
    with pytest.raises(UsageError), joulebench.stage("has space"):
        pass


def test_protocol_lines() -> None:
    assert parse_stage_line("begin load mono=12.5") == parse_stage_line("  begin   load   mono=12.5 ")
    line = parse_stage_line("end load")
    assert line is not None and line.t_s is None
    unix = parse_stage_line(f"begin x unix={time.time()}")
    assert unix is not None and unix.t_s == pytest.approx(time.monotonic(), abs=0.5)
    assert parse_stage_line("# comment") is None and parse_stage_line("") is None
    for bad in ("start load", "begin", "begin a b c", "begin a wall=3", "begin a mono=x"):
        with pytest.raises(ValueError):
            parse_stage_line(bad)


def test_follower_reads_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "stages"
    rec = Recorder()
    follower = StageFileFollower(path, rec)
    assert follower.poll() == 0  # the file does not exist yet
    path.write_text("begin a mono=1.0\nend a mo")
    assert follower.poll() == 1
    with path.open("a") as fh:
        fh.write("no=2.0\nend\n")
    assert follower.poll() == 1
    assert rec.marks == [("begin", "a", 1.0), ("end", "a", 2.0)]
    assert len(follower.errors) == 1


def test_concurrent_polls_pass_each_line_on_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler thread and Monitor.stop() may poll at the same instant: no mark may arrive twice."""
    import builtins
    import threading

    from joulebench.measurement import stagefile

    path = tmp_path / "stages"
    path.write_text("begin load mono=1.0\nend load mono=2.0\n")

    class SlowFile:
        """Reads, then waits: both threads have read the same bytes before either moves the offset."""

        def __init__(self, fh):  # type: ignore[no-untyped-def]
            self.fh = fh

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def seek(self, offset: int) -> None:
            self.fh.seek(offset)

        def read(self) -> bytes:
            data = self.fh.read()
            time.sleep(0.05)
            return data

    def slow_open(*args, **kwargs):  # type: ignore[no-untyped-def]
        return SlowFile(builtins.open(*args, **kwargs))

    monkeypatch.setattr(stagefile, "open", slow_open, raising=False)
    marks: list[tuple[str, str, float | None]] = []

    class Marks:
        def begin(self, name: str, t_s: float | None = None) -> None:
            marks.append(("begin", name, t_s))

        def end(self, name: str, t_s: float | None = None) -> None:
            marks.append(("end", name, t_s))

        def span(self, name: str, start_s: float, end_s: float) -> None:
            raise AssertionError

    follower = StageFileFollower(path, Marks())
    threads = [threading.Thread(target=follower.poll) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert marks == [("begin", "load", 1.0), ("end", "load", 2.0)]
