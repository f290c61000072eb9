from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.resultsdb import build_sample_db


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample database of tests/report/resultsdb.py, written once per test run; tests only read it."""
    return build_sample_db(tmp_path_factory.mktemp("sample-db") / "joulebench.db")
