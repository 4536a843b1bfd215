"""Rate limits without a server: the rules and their settings, the budgets on the in-memory
store, the client address, and the 429 headers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from infrastructure.rate_limits import RateLimited, RateLimiter, Rule, Verdict
from infrastructure.settings import PRODUCTION_RATE_LIMITS, SettingsError, load_settings
from interfaces.http.rate_limits import client_address, rate_limit_headers

pytestmark = pytest.mark.unit

LONG_SECRET = "s" * 40


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ENVIRONMENT", "JWT_SECRET", "RATE_LIMITS", "TRUSTED_PROXIES"):
        monkeypatch.delenv(f"MERCATO_{name}", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env file


def test_production_limits_logins_to_five_a_minute_and_registrations_to_three_an_hour() -> None:
    limits = load_settings(environment="production", jwt_secret=LONG_SECRET).effective_rate_limits
    assert limits["login_ip"] == limits["login_account"] == "5/minute"
    assert limits["register_ip"] == "3/hour"
    assert set(limits) == {rule.value for rule in Rule}


def test_outside_production_only_registration_is_looser() -> None:
    limits = load_settings().effective_rate_limits
    assert limits["register_ip"] == "60/hour"
    assert {rule: limit for rule, limit in limits.items() if rule != "register_ip"} == {
        rule: limit for rule, limit in PRODUCTION_RATE_LIMITS.items() if rule != "register_ip"
    }


def test_a_json_setting_replaces_some_limits_and_none_turns_a_rule_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "MERCATO_RATE_LIMITS", '{"login_account": "10/minute", "requests_ip": "none"}'
    )
    limits = load_settings().effective_rate_limits
    assert limits["login_account"] == "10/minute"
    assert limits["requests_ip"] is None
    assert limits["login_ip"] == "5/minute"


@pytest.mark.parametrize(
    "overrides",
    [
        {"login": "5/minute"},
        {"login_ip": "five a minute"},
        {"login_ip": "0/minute"},
        {"login_ip": "3/hour;100/day"},
    ],
)
def test_unknown_rules_and_unreadable_limits_are_refused_at_start(
    overrides: dict[str, str],
) -> None:
    with pytest.raises(SettingsError, match="MERCATO_RATE_LIMITS"):
        load_settings(rate_limits=overrides)


def test_trusted_proxies_must_be_addresses_or_networks() -> None:
    assert load_settings(trusted_proxies="10.0.0.0/8, ::1").trusted_proxies == ["10.0.0.0/8", "::1"]
    with pytest.raises(SettingsError, match="MERCATO_TRUSTED_PROXIES"):
        load_settings(trusted_proxies="proxy.internal")


async def test_the_sixth_hit_within_the_window_is_refused_with_the_wait_until_a_slot_frees() -> (
    None
):
    limiter = RateLimiter({Rule.LOGIN_IP: "5/minute"})
    for _ in range(5):
        await limiter.spend(Rule.LOGIN_IP, "203.0.113.7")
    with pytest.raises(RateLimited) as refused:
        await limiter.spend(Rule.LOGIN_IP, "203.0.113.7")
    verdict = refused.value.verdict
    assert (verdict.rule, verdict.quota, verdict.window_seconds) == (Rule.LOGIN_IP, 5, 60)
    assert verdict.remaining == 0
    assert 55 <= verdict.reset_after <= 60


async def test_budgets_are_kept_apart_by_identifier_and_by_rule() -> None:
    limiter = RateLimiter({Rule.LOGIN_IP: "1/minute", Rule.REGISTER_IP: "1/minute"})
    await limiter.spend(Rule.LOGIN_IP, "203.0.113.7")
    await limiter.spend(Rule.LOGIN_IP, "203.0.113.8")
    await limiter.spend(Rule.REGISTER_IP, "203.0.113.7")
    with pytest.raises(RateLimited):
        await limiter.spend(Rule.LOGIN_IP, "203.0.113.7")


async def test_a_rule_turned_off_never_refuses() -> None:
    limiter = RateLimiter({Rule.LOGIN_IP: None})
    for _ in range(50):
        await limiter.spend(Rule.LOGIN_IP, "203.0.113.7")


def test_a_refusal_carries_retry_after_and_the_ietf_draft_headers() -> None:
    verdict = Verdict(Rule.LOGIN_IP, quota=5, window_seconds=60, remaining=0, reset_after=42)
    assert rate_limit_headers(verdict) == {
        "Retry-After": "42",
        "RateLimit-Policy": '"login_ip";q=5;w=60',
        "RateLimit": '"login_ip";r=0;t=42',
    }


def request_from(
    peer: str, *, forwarded: str | None = None, trusted: tuple[str, ...] = ()
) -> Request:
    settings = SimpleNamespace(trusted_proxies=list(trusted))
    app = SimpleNamespace(state=SimpleNamespace(container=SimpleNamespace(settings=settings)))
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request(
        {"type": "http", "headers": headers, "client": (peer, 1234), "app": app, "path": "/"}
    )


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    assert client_address(request_from("198.51.100.1", forwarded="203.0.113.7")) == "198.51.100.1"


def test_behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() -> None:
    request = request_from(
        "10.0.0.2", forwarded="1.1.1.1, 203.0.113.7, 10.0.0.9", trusted=("10.0.0.0/8",)
    )
    # 1.1.1.1 was written by the client itself: only what the proxies appended is believed.
    assert client_address(request) == "203.0.113.7"


def test_a_garbled_forwarded_hop_leaves_the_last_trusted_address() -> None:
    request = request_from("10.0.0.2", forwarded="not-an-address", trusted=("10.0.0.0/8",))
    assert client_address(request) == "10.0.0.2"


def test_ipv6_clients_are_counted_by_their_slash_64() -> None:
    first = client_address(request_from("2001:db8:1:2::1"))
    other_host_same_network = client_address(request_from("2001:db8:1:2:ffff::9"))
    assert first == other_host_same_network == "2001:db8:1:2::/64"
    assert client_address(request_from("::ffff:203.0.113.7")) == "203.0.113.7"
