from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

import jwt
import pytest

from application.accounts.errors import InvalidToken
from application.ports.clock import ManualClock
from infrastructure.auth.tokens import JwtTokenCodec, derive_key

pytestmark = pytest.mark.unit

SECRET = "a-test-secret-that-is-long-enough-for-hs256"
ACCOUNT_ID = uuid4()
SESSION_ID = uuid4()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def codec(clock: ManualClock) -> JwtTokenCodec:
    return JwtTokenCodec(secret=SECRET, clock=clock)


def access_token(codec: JwtTokenCodec) -> str:
    return codec.issue_access(
        account_id=ACCOUNT_ID, tenant_id="acme", roles=frozenset({"buyer"}), token_version=3
    ).value


def access_claims(clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    claims = {
        "sub": str(ACCOUNT_ID),
        "tenant": "acme",
        "typ": "access",
        "jti": uuid4().hex,
        "iat": now,
        "exp": now + 900,
        "roles": ["buyer"],
        "tv": 1,
    }
    return {name: value for name, value in (claims | overrides).items() if value is not None}


def signed(claims: dict[str, Any], key: bytes | str = derive_key(SECRET, "access")) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{signature}"


def test_an_access_token_carries_the_account_tenant_roles_and_token_version(
    codec: JwtTokenCodec, clock: ManualClock
) -> None:
    issued = codec.issue_access(
        account_id=ACCOUNT_ID,
        tenant_id="acme",
        roles=frozenset({"buyer", "creator"}),
        token_version=3,
    )

    claims = codec.read_access(issued.value)

    assert claims.account_id == ACCOUNT_ID
    assert claims.tenant_id == "acme"
    assert claims.roles == {"buyer", "creator"}
    assert claims.token_version == 3
    assert claims.token_id == issued.token_id
    assert claims.expires_at == issued.expires_at == issued.issued_at + timedelta(minutes=15)


def test_an_access_token_has_exactly_the_documented_claims(codec: JwtTokenCodec) -> None:
    payload = jwt.decode(
        access_token(codec),
        derive_key(SECRET, "access"),
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert set(payload) == {"sub", "tenant", "typ", "jti", "iat", "exp", "roles", "tv"}
    assert payload["typ"] == "access"
    assert payload["exp"] - payload["iat"] == 15 * 60


def test_a_refresh_token_names_its_session_and_lasts_seven_days(codec: JwtTokenCodec) -> None:
    issued = codec.issue_refresh(
        account_id=ACCOUNT_ID, tenant_id="acme", session_id=SESSION_ID, token_id="t1"
    )

    claims = codec.read_refresh(issued.value)

    assert (claims.account_id, claims.tenant_id, claims.session_id, claims.token_id) == (
        ACCOUNT_ID,
        "acme",
        SESSION_ID,
        "t1",
    )
    assert issued.expires_at - issued.issued_at == timedelta(days=7)


def test_a_token_is_accepted_until_it_expires(codec: JwtTokenCodec, clock: ManualClock) -> None:
    token = access_token(codec)

    clock.advance(timedelta(minutes=14, seconds=59))
    codec.read_access(token)
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidToken, match="expired"):
        codec.read_access(token)


def test_a_token_signed_with_another_secret_is_refused(
    codec: JwtTokenCodec, clock: ManualClock
) -> None:
    forged = signed(
        access_claims(clock), key=derive_key("another-secret-of-enough-length", "access")
    )

    with pytest.raises(InvalidToken, match="bad signature"):
        codec.read_access(forged)


def test_a_token_whose_claims_were_edited_after_signing_is_refused(
    codec: JwtTokenCodec, clock: ManualClock
) -> None:
    signature = access_token(codec).rsplit(".", 1)[1]
    tampered = unsigned(
        {"alg": "HS256", "typ": "JWT"}, access_claims(clock, roles=["admin"]), signature
    )

    with pytest.raises(InvalidToken):
        codec.read_access(tampered)


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE", "RS256", "HS512", "ES256"])
def test_a_token_with_any_algorithm_but_hs256_is_refused(
    codec: JwtTokenCodec, clock: ManualClock, algorithm: str
) -> None:
    token = unsigned({"alg": algorithm, "typ": "JWT"}, access_claims(clock))

    with pytest.raises(InvalidToken):
        codec.read_access(token)


@pytest.mark.filterwarnings("ignore:The HMAC key is 32 bytes long")
def test_an_hs512_token_signed_with_the_right_key_is_still_refused(
    codec: JwtTokenCodec, clock: ManualClock
) -> None:
    token = jwt.encode(access_claims(clock), derive_key(SECRET, "access"), algorithm="HS512")

    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        codec.read_access(token)


def test_a_refresh_token_is_not_an_access_token(codec: JwtTokenCodec) -> None:
    refresh = codec.issue_refresh(
        account_id=ACCOUNT_ID, tenant_id="acme", session_id=SESSION_ID, token_id="t1"
    ).value

    with pytest.raises(InvalidToken):
        codec.read_access(refresh)


def test_an_access_token_is_not_a_refresh_token(codec: JwtTokenCodec) -> None:
    with pytest.raises(InvalidToken):
        codec.read_refresh(access_token(codec))


def test_a_typ_other_than_the_expected_one_is_refused_even_with_the_right_key(
    codec: JwtTokenCodec, clock: ManualClock
) -> None:
    token = signed(access_claims(clock, typ="refresh"))

    with pytest.raises(InvalidToken, match="expected an access token"):
        codec.read_access(token)


@pytest.mark.parametrize("missing", ["sub", "tenant", "typ", "jti", "iat", "exp", "roles", "tv"])
def test_a_token_missing_a_required_claim_is_refused(
    codec: JwtTokenCodec, clock: ManualClock, missing: str
) -> None:
    token = signed(access_claims(clock, **{missing: None}))

    with pytest.raises(InvalidToken, match=f"missing {missing} claim"):
        codec.read_access(token)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "not-a-uuid"),
        ("sub", 42),
        ("tenant", ""),
        ("tenant", ["acme"]),
        ("tv", "1"),
        ("tv", True),
        ("roles", "admin"),
        ("roles", [1]),
        ("exp", "tomorrow"),
    ],
)
def test_a_token_with_a_malformed_claim_is_refused(
    codec: JwtTokenCodec, clock: ManualClock, claim: str, value: Any
) -> None:
    token = signed(access_claims(clock, **{claim: value}))

    with pytest.raises(InvalidToken):
        codec.read_access(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x", "x" * 5000])
def test_garbage_is_an_invalid_token_not_a_crash(codec: JwtTokenCodec, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        codec.read_access(garbage)


def test_each_token_type_has_its_own_key() -> None:
    assert derive_key(SECRET, "access") != derive_key(SECRET, "refresh")
    assert len(derive_key(SECRET, "access")) == 32
