from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.cli.main import main
from joulebench.store.schema import SCHEMA_VERSION
from tests.cli.helpers import joulebench
from tests.report.resultsdb import ResultsWriter, build_sample_db


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_db(tmp_path_factory.mktemp("cli-report") / "joulebench.db")


def test_report_writes_html_figures_and_exports(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    result = joulebench(
        "report", "--db", str(db), "--out", str(out), "--runs", "engine=vllm|transformers", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert f"report: {out / 'report.html'}" in result.stdout
    assert len(list(out.glob("*.png"))) == len(list(out.glob("*.svg"))) == 10
    assert (out / "summary.parquet").is_file()


def test_default_database_is_joulebench_db_in_the_working_folder(db: Path, tmp_path: Path) -> None:
    (tmp_path / "joulebench.db").write_bytes(db.read_bytes())
    result = joulebench("report", "--runs", "id=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "joulebench-report" / "report.html").is_file()


def _newer_db(path: Path) -> Path:
    w = ResultsWriter(path, schema_version=SCHEMA_VERSION + 1)
    w.run("vllm", "m")
    w.close()
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "absent.db"], "no results database at absent.db"),
        (["--db", "empty.db"], "holds no runs"),
        (["--db", "newer.db"], f"schema version {SCHEMA_VERSION + 1}"),
        (["--db", "{db}", "--runs", "engine=tensorrt-llm"], "no run in"),
        (["--db", "{db}", "--runs", "gpu=h100"], "unknown run filter key 'gpu'"),
        (["--db", "{db}", "--runs", "id=x"], "bad value 'x' for id"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    ResultsWriter(tmp_path / "empty.db").close()
    _newer_db(tmp_path / "newer.db")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["report", *[a.format(db=db) for a in args], "--out", "o"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and err.startswith("joulebench: error: ")
    assert message in err
    assert not (tmp_path / "o").exists()
