from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from infrastructure.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_tokens_last_fifteen_minutes_and_seven_days_and_bodies_64_kib_by_default() -> None:
    settings = load_settings()

    assert settings.access_token_ttl == timedelta(minutes=15)
    assert settings.refresh_token_ttl == timedelta(days=7)
    assert settings.max_request_body_bytes == 64 * 1024


def test_token_lifetimes_read_seconds_or_iso_8601_durations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MERCATO_ACCESS_TOKEN_TTL", "300")
    monkeypatch.setenv("MERCATO_REFRESH_TOKEN_TTL", "P1D")

    settings = load_settings()

    assert settings.access_token_ttl == timedelta(minutes=5)
    assert settings.refresh_token_ttl == timedelta(days=1)


def test_a_token_lifetime_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="token lifetimes must be positive"):
        load_settings(access_token_ttl=0)


def test_argon2_memory_must_cover_its_lanes() -> None:
    with pytest.raises(SettingsError, match="at least 8 x MERCATO_PASSWORD_HASH_PARALLELISM"):
        load_settings(password_hash_memory_kib=16, password_hash_parallelism=4)


def test_a_tiny_body_limit_is_refused() -> None:
    with pytest.raises(SettingsError, match="MERCATO_MAX_REQUEST_BODY_BYTES"):
        load_settings(max_request_body_bytes=10)
