from __future__ import annotations

import pytest

from infrastructure.auth.passwords import Argon2PasswordHasher

pytestmark = pytest.mark.unit


def cheap_hasher(time_cost: int = 1) -> Argon2PasswordHasher:
    return Argon2PasswordHasher(time_cost=time_cost, memory_kib=8, parallelism=1)


async def test_a_hash_verifies_its_password_and_no_other() -> None:
    hasher = cheap_hasher()
    password_hash = await hasher.hash("correct horse battery staple")

    assert password_hash.startswith("$argon2id$")
    assert "correct horse" not in password_hash
    assert await hasher.verify(password_hash, "correct horse battery staple")
    assert not await hasher.verify(password_hash, "Correct horse battery staple")


async def test_the_same_password_hashes_differently_each_time() -> None:
    hasher = cheap_hasher()

    assert await hasher.hash("same password") != await hasher.hash("same password")


@pytest.mark.parametrize("malformed", ["", "plain text", "$argon2id$v=19$m=8,t=1,p=1$$"])
async def test_a_malformed_hash_is_a_mismatch_not_an_error(malformed: str) -> None:
    assert not await cheap_hasher().verify(malformed, "anything")


async def test_a_hash_made_with_other_parameters_needs_rehashing() -> None:
    old = await cheap_hasher(time_cost=1).hash("password")
    current = cheap_hasher(time_cost=2)

    assert current.needs_rehash(old)
    assert await current.verify(old, "password")
    assert not current.needs_rehash(await current.hash("password"))


def test_an_unreadable_hash_needs_rehashing() -> None:
    assert cheap_hasher().needs_rehash("not a hash")


async def test_verifying_nothing_runs_a_verification_against_a_hash_of_its_own() -> None:
    hasher = cheap_hasher()
    verified: list[str] = []
    real_verify = hasher.verify

    async def spy(password_hash: str, password: str) -> bool:
        verified.append(password)
        return await real_verify(password_hash, password)

    hasher.verify = spy  # type: ignore[method-assign]
    await hasher.verify_nothing("whatever")
    await hasher.verify_nothing("again")

    assert verified == ["whatever", "again"]
