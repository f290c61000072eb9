from __future__ import annotations

import json
from pathlib import Path

import pytest

from joulebench.cli.main import main
from tests.cli.helpers import joulebench
from tests.report.resultsdb import build_sample_db


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sample_db(tmp_path_factory.mktemp("cli-advise") / "joulebench.db")


def test_advise_json_ranks_and_states_the_crossover(db: Path, tmp_path: Path) -> None:
    args = [
        "--requests-per-day",
        "1000",
        "--cold-starts-per-day",
        "1",
        "--grid-gco2-per-kwh",
        "400",
        "--json",
    ]
    result = joulebench("advise", "--db", str(db), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    advice = json.loads(result.stdout)
    assert [r["engine"] for r in advice["ranking"]] == ["vllm", "transformers"]
    assert advice["load"]["tokens_per_day"] == 100_000
    crossing = next(c for c in advice["crossovers"] if c["variable"] == "requests_per_day")
    assert crossing["value"] == pytest.approx(21005 / 287.5)  # (22600 - 1595) J / (100 x (3.85 - 0.975) J)
    vllm = advice["ranking"][0]
    assert vllm["gco2"] == pytest.approx((22600 + 0.975 * 100_000) / 3.6e6 * 400)


def test_advise_text_names_the_flip(db: Path, tmp_path: Path) -> None:
    args = ["--requests-per-day", "50", "--cold-starts-per-day", "1", "--tokens-per-request", "100"]
    result = joulebench("advise", "--db", str(db), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    ranks = [line.split()[1] for line in lines if line[:1].isdigit()]
    assert ranks == ["transformers", "vllm"]
    assert "transformers is cheaper below 73.06 requests/day" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cold-starts-per-day", "1"], "--requests-per-day and --cold-starts-per-day go together"),
        (
            ["--requests-per-day", "-5", "--cold-starts-per-day", "1"],
            "--requests-per-day must be a number >= 0",
        ),
        (["--requests-per-day", "5", "--cold-starts-per-day", "1", "--model", "x"], "for model 'x'"),
        (
            ["--requests-per-day", "5", "--cold-starts-per-day", "1", "--price-per-kwh", "-1"],
            "--price-per-kwh",
        ),
        (
            ["--requests-per-day", "5", "--cold-starts-per-day", "1", "--db", "absent.db"],
            "no results database",
        ),
        (
            ["--requests-per-day", "5", "--cold-starts-per-day", "1", "--tokens-per-request", "inf"],
            "--tokens-per-request must be",
        ),
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
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["advise", "--db", str(db), *args])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.count("\n") == 1 and err.startswith("joulebench: error: ")
    assert message in err
