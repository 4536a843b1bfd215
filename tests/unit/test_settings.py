from __future__ import annotations

from pathlib import Path

import pytest

from infrastructure.settings import Profile, SettingsError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("PROFILE", "ENVIRONMENT", "JWT_SECRET", "DATA_DIR", "REDIS_URL"):
        monkeypatch.delenv(f"MERCATO_{name}", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_the_default_profile_is_embedded_with_state_under_dot_mercato() -> None:
    settings = load_settings()
    assert settings.profile is Profile.EMBEDDED
    assert settings.data_dir == Path(".mercato")


def test_settings_come_from_mercato_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_PROFILE", "services")
    monkeypatch.setenv("MERCATO_REDIS_URL", "redis://cache:6379/1")
    settings = load_settings()
    assert settings.profile is Profile.SERVICES
    assert settings.redis_url == "redis://cache:6379/1"


def test_a_short_jwt_secret_outside_development_is_refused_in_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "production")
    monkeypatch.setenv("MERCATO_JWT_SECRET", "too-short")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == (
        "MERCATO_JWT_SECRET must be at least 32 characters outside development (it has 9)"
    )


def test_the_development_secret_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "production")
    with pytest.raises(SettingsError, match="MERCATO_JWT_SECRET must be set"):
        load_settings()


def test_every_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERCATO_PROFILE", "cloud")
    monkeypatch.setenv("MERCATO_REDIS_URL", "http://nope")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    lines = str(refused.value).splitlines()
    assert lines[0].startswith("invalid setting MERCATO_PROFILE:")
    assert lines[1].startswith("invalid setting MERCATO_REDIS_URL:")


def test_clickhouse_defaults_to_chdb_inside_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MERCATO_CLICKHOUSE_URL")
    settings = load_settings(data_dir=Path("/srv/mercato"))
    assert settings.clickhouse_target == "chdb:///srv/mercato/clickhouse"
