"""A user's own logging config for an engine's processes (VLLM_LOGGING_CONFIG_PATH,
SGLANG_LOGGING_CONFIG_PATH) is extended, and one the engine could not load is refused naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.engines.log_hook import user_config
from joulebench.errors import UsageError

ENV = "VLLM_LOGGING_CONFIG_PATH"


def test_no_variable_is_no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert user_config(ENV) is None
    monkeypatch.setenv(ENV, "")
    assert user_config(ENV) is None


def test_a_dictconfig_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "logging.json"
    path.write_text('{"version": 1, "loggers": {"vllm": {"level": "DEBUG"}}}')
    monkeypatch.setenv(ENV, str(path))
    assert user_config(ENV) == {"version": 1, "loggers": {"vllm": {"level": "DEBUG"}}}


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read it (No such file or directory)"),
        ("version: 1\n", "not a JSON logging config"),
        ("[1, 2]", "not a logging dictConfig"),
        ('{"loggers": {}}', "not a logging dictConfig"),
    ],
)
def test_a_config_the_engine_could_not_load_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, words: str
) -> None:
    path = tmp_path / "logging.json"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(ENV, str(path))
    with pytest.raises(UsageError) as caught:
        user_config(ENV)
    assert str(caught.value).startswith(f"{ENV}={path}: ") and words in str(caught.value)
    assert "\n" not in str(caught.value)
