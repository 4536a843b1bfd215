"""The business's deadlines, the platform fee and the webhook key come from settings, are
validated with one clear line each, and reach the marketplace through the composition root."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from application.commerce.services import DEFAULT_PLATFORM_FEE_BPS
from application.ports.event_store import EventStore
from application.ports.saga_store import SagaStore
from application.sagas.checkout import DEFAULT_PAYMENT_TIMEOUT
from application.sagas.escrow import DEFAULT_DISPUTE_WINDOW
from infrastructure.payments.simulator import PaymentSimulator
from infrastructure.settings import SettingsError, load_settings
from interfaces import bootstrap

pytestmark = pytest.mark.unit

VARIABLES = (
    "ENVIRONMENT",
    "JWT_SECRET",
    "PAYMENT_TIMEOUT",
    "DISPUTE_WINDOW",
    "PLATFORM_FEE_BPS",
    "PAYMENT_WEBHOOK_SECRET",
)
LONG_JWT_SECRET = "j" * 40


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(f"MERCATO_{name}", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


class FixedClock:
    def now(self) -> datetime:
        return datetime(2025, 1, 1, tzinfo=UTC)


def refusal(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(f"MERCATO_{name.upper()}", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    return str(refused.value)


def test_the_defaults_are_the_code_defaults() -> None:
    settings = load_settings()
    assert settings.payment_timeout == DEFAULT_PAYMENT_TIMEOUT == timedelta(minutes=15)
    assert settings.dispute_window == DEFAULT_DISPUTE_WINDOW == timedelta(hours=72)
    assert settings.platform_fee_bps == DEFAULT_PLATFORM_FEE_BPS
    assert settings.payment_webhook_secret.get_secret_value() == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("900", timedelta(minutes=15)),
        ("PT15M", timedelta(minutes=15)),
        ("PT1H30M", timedelta(minutes=90)),
        ("P3D", timedelta(days=3)),
    ],
)
def test_deadlines_are_seconds_or_iso_8601_durations(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: timedelta
) -> None:
    monkeypatch.setenv("MERCATO_PAYMENT_TIMEOUT", text)
    monkeypatch.setenv("MERCATO_DISPUTE_WINDOW", text)
    settings = load_settings()
    assert settings.payment_timeout == expected
    assert settings.dispute_window == expected


@pytest.mark.parametrize("name", ["payment_timeout", "dispute_window"])
@pytest.mark.parametrize("text", ["0", "-PT1M"])
def test_a_deadline_that_is_not_positive_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    assert refusal(monkeypatch, **{name: text}) == (
        f"invalid setting MERCATO_{name.upper()}: must be positive"
    )


def test_a_deadline_that_is_not_a_duration_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(monkeypatch, payment_timeout="fifteen minutes")
    assert message.count("\n") == 0
    assert message.startswith("invalid setting MERCATO_PAYMENT_TIMEOUT: ")


@pytest.mark.parametrize("text", ["0", "250", "10000"])
def test_the_fee_is_basis_points_from_0_to_10000(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setenv("MERCATO_PLATFORM_FEE_BPS", text)
    assert load_settings().platform_fee_bps == int(text)


@pytest.mark.parametrize("text", ["-1", "10001", "ten"])
def test_a_fee_out_of_range_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    message = refusal(monkeypatch, platform_fee_bps=text)
    assert message.count("\n") == 0
    assert message.startswith("invalid setting MERCATO_PLATFORM_FEE_BPS: ")


def test_a_short_webhook_secret_is_refused_outside_development(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = refusal(
        monkeypatch,
        environment="production",
        jwt_secret=LONG_JWT_SECRET,
        payment_webhook_secret="short",
    )
    assert message == (
        "MERCATO_PAYMENT_WEBHOOK_SECRET must be at least 32 characters outside development "
        "(it has 5); leave it empty to derive it from MERCATO_JWT_SECRET"
    )


def test_the_webhook_secret_may_be_empty_or_long_outside_development_and_anything_in_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "production")
    monkeypatch.setenv("MERCATO_JWT_SECRET", LONG_JWT_SECRET)
    assert load_settings().payment_webhook_secret.get_secret_value() == ""
    monkeypatch.setenv("MERCATO_PAYMENT_WEBHOOK_SECRET", "w" * 32)
    assert load_settings().payment_webhook_secret.get_secret_value() == "w" * 32
    monkeypatch.setenv("MERCATO_ENVIRONMENT", "development")
    monkeypatch.setenv("MERCATO_PAYMENT_WEBHOOK_SECRET", "short")
    assert load_settings().payment_webhook_secret.get_secret_value() == "short"


def test_bootstrap_passes_the_deadlines_and_the_fee_to_the_marketplace() -> None:
    settings = load_settings(payment_timeout="PT2M", dispute_window="P1D", platform_fee_bps=250)
    # Building the marketplace touches none of its ports; these stand-ins are never called.
    marketplace = bootstrap._marketplace(
        settings,
        cast(EventStore, object()),
        cast(SagaStore, object()),
        PaymentSimulator(FixedClock()),
        FixedClock(),
    )
    assert marketplace.policy.payment_timeout == timedelta(minutes=2)
    assert marketplace.policy.dispute_window == timedelta(days=1)
    assert marketplace.platform_fee_bps == 250
    assert marketplace.services.platform_fee_bps == 250


def test_the_webhook_secret_is_the_configured_one_when_set() -> None:
    settings = load_settings(payment_webhook_secret="w" * 32)
    assert bootstrap._webhook_secret(settings) == b"w" * 32


def test_without_a_webhook_secret_it_is_derived_from_the_jwt_secret_as_before() -> None:
    settings = load_settings(jwt_secret=LONG_JWT_SECRET)
    expected = hmac.new(
        LONG_JWT_SECRET.encode(), b"mercato payment simulator webhooks", hashlib.sha256
    ).digest()
    assert bootstrap._webhook_secret(settings) == expected
    assert expected != LONG_JWT_SECRET.encode()
