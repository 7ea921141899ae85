"""Settings: environment, config file, arguments; errors name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringfence.config import load_settings
from ringfence.errors import InputError


def test_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arguments beat the environment, which beats the file, which beats defaults."""
    cfg = tmp_path / "ringfence.toml"
    cfg.write_text('port = 9001\nhost = "127.0.0.2"\nlog_level = "debug"\n')
    monkeypatch.delenv("RINGFENCE_PORT", raising=False)
    assert load_settings(cfg).port == 9001
    monkeypatch.setenv("RINGFENCE_PORT", "9002")
    s = load_settings(cfg)
    assert (s.port, s.host, s.log_level) == (9002, "127.0.0.2", "debug")
    assert load_settings(cfg, port=9003).port == 9003
    assert load_settings().database_url == "sqlite:///var/ringfence.db"


@pytest.mark.parametrize(("content", "field"), [
    ("port = 0\n", "port"),
    ("prot = 1\n", "prot"),
    ('log_level = "loud"\n', "log_level"),
    ("port = \n", "config"),
])
def test_bad_config_names_the_field(tmp_path: Path, content: str, field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad value or unknown key in the file is an InputError naming it."""
    monkeypatch.delenv("RINGFENCE_PORT", raising=False)
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    with pytest.raises(InputError) as info:
        load_settings(cfg)
    assert field in {i.field for i in info.value.issues}


def test_missing_config_file(tmp_path: Path) -> None:
    """A config file that does not exist is named."""
    with pytest.raises(InputError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
