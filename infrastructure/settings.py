"""Mercato's settings, read once from `MERCATO_*` environment variables (or a `.env` file).

Nothing here connects to anything: the composition root (`interfaces.bootstrap`) turns settings
into adapters. Validation fails fast with one clear sentence per problem.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from limits import parse_many
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_JWT_SECRET_LENGTH = 32
MIN_WEBHOOK_SECRET_LENGTH = 32
DEVELOPMENT_JWT_SECRET = "development-only-secret-never-use-in-production"

PRODUCTION_RATE_LIMITS: dict[str, str] = {
    "requests_ip": "1200/minute",
    "login_ip": "5/minute",
    "login_account": "5/minute",
    "register_ip": "3/hour",
    "command_principal": "120/minute",
    "command_tenant": "60000/minute",
}
"""Every rate-limit rule and its limit in production (`limits` notation: "5/minute",
"10 per hour", "100 per 2 hours"). `requests_ip`: any request from one client address; `login_*`:
attempts per client address and per account (tenant + email); `register_ip`: registrations per
client address; `command_*`: commands per authenticated principal and per tenant (a tenant is
a whole marketplace: its limit only keeps one tenant from starving the others)."""
DEVELOPMENT_RATE_LIMITS: dict[str, str] = PRODUCTION_RATE_LIMITS | {"register_ip": "60/hour"}
"""Outside production only registration is looser (a developer signs up a few test users)."""
RATE_LIMIT_OFF = "none"


class Profile(StrEnum):
    """Which adapters back the ports: everything in-process, or the real services."""

    EMBEDDED = "embedded"
    SERVICES = "services"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MERCATO_", env_file=".env", extra="ignore", frozen=True
    )

    profile: Profile = Profile.EMBEDDED
    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(
        default=Path(".mercato"),
        description="Where the embedded profile keeps its state (delete it to start afresh).",
    )

    jwt_secret: SecretStr = SecretStr(DEVELOPMENT_JWT_SECRET)
    access_token_ttl: timedelta = Field(
        default=timedelta(minutes=15),
        description="How long an access token is accepted (seconds, or ISO 8601 like PT15M).",
    )
    refresh_token_ttl: timedelta = Field(
        default=timedelta(days=7),
        description="How long a refresh token is accepted; each refresh issues a new one.",
    )
    payment_webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "The payment simulator's webhook signing key, the same in every process of a "
            "deployment. Empty: derived from the JWT secret."
        ),
    )
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65536, ge=8, le=4 * 1024 * 1024)
    password_hash_parallelism: int = Field(default=4, ge=1, le=64)
    password_hash_concurrency: int = Field(
        default=4,
        ge=1,
        description="At most this many argon2 hashes run at once (each takes memory_kib).",
    )
    max_request_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Larger request bodies are refused with 413."
    )

    payment_timeout: timedelta = Field(
        default=timedelta(minutes=15),
        description=(
            "From placing an order to the capture of its payment; then the checkout saga "
            "cancels the order (seconds, or ISO 8601 like PT15M)."
        ),
    )
    dispute_window: timedelta = Field(
        default=timedelta(hours=72),
        description=(
            "From delivery to the automatic release of escrow, unless the buyer confirms or "
            "disputes first (seconds, or ISO 8601 like P3D)."
        ),
    )
    platform_fee_bps: int = Field(
        default=1_000,
        ge=0,
        le=10_000,
        description="The platform's cut of every sale, in basis points (1000 = 10 %).",
    )

    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    postgres_pool_min: int = Field(default=2, ge=1)
    postgres_pool_max: int = Field(default=16, ge=1)
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = Field(
        default="mercato.",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="Prefix of the Kafka topics, one per event category (mercato.order, …).",
    )
    kafka_partitions: int = Field(
        default=12,
        ge=1,
        le=1024,
        description=(
            "Partitions of each topic the relay creates: the most projector replicas that "
            "share one projection's work."
        ),
    )
    redis_key_prefix: str = Field(
        default="mercato:", description="Prefix of every Redis key Mercato writes."
    )
    extra_projections: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "More projections to run, as module:attribute of a Projection (comma-separated "
            "or a JSON list), e.g. myplugin.views:STATS."
        ),
    )
    read_store_timeout: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description=(
            "Seconds a call to Redis or a read from Elasticsearch may take before the store "
            "counts as unavailable (one immediate retry, so a query answers 503 within about "
            "twice this, and a worker backs off and tries again)."
        ),
    )
    read_your_writes_wait: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description=(
            "How long (seconds) a query with min_position waits for its read model before "
            "answering 503 with Retry-After."
        ),
    )
    elasticsearch_url: str = "http://127.0.0.1:9200"
    elasticsearch_index_prefix: str = Field(
        default="mercato-",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,40}$",
        description="Prefix of every Elasticsearch index and alias Mercato creates.",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    clickhouse_url: str = Field(
        default="",
        description=(
            "A ClickHouse server URL (http://user:pass@host:8123/db) or a chdb folder "
            "(chdb:///path). Empty means chdb inside data_dir."
        ),
    )

    clickhouse_database: str = Field(
        default="mercato",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,60}$",
        description="The ClickHouse database that holds the analytics tables.",
    )

    rate_limits: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Limits that replace the defaults of some rules, as JSON: "
            '{"login_account": "10/minute", "command_tenant": "none"} ("none" turns a rule off). '
            "Rules and defaults: infrastructure.settings.PRODUCTION_RATE_LIMITS."
        ),
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Addresses or networks (comma-separated) of the reverse proxies in front of the "
            "API: only from these is X-Forwarded-For believed. Empty: it is ignored."
        ),
    )

    log_level: str = "INFO"

    @field_validator("extra_projections", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # a ValueError names the bad item
        return value

    @field_validator("rate_limits")
    @classmethod
    def _known_rules_and_limits(cls, value: dict[str, str]) -> dict[str, str]:
        for rule, limit in value.items():
            if rule not in PRODUCTION_RATE_LIMITS:
                known = ", ".join(PRODUCTION_RATE_LIMITS)
                raise ValueError(f"unknown rate-limit rule {rule!r} (known: {known})")
            if limit.strip().lower() != RATE_LIMIT_OFF:
                try:
                    [item] = parse_many(limit)
                    if item.amount < 1:
                        raise ValueError
                except ValueError:
                    raise ValueError(f"{rule}: {limit!r} is not one limit like 5/minute") from None
        return value

    @property
    def effective_rate_limits(self) -> dict[str, str | None]:
        """Each rule's limit in this environment after the overrides; None where turned off."""
        defaults = (
            PRODUCTION_RATE_LIMITS
            if self.environment is Environment.PRODUCTION
            else DEVELOPMENT_RATE_LIMITS
        )
        merged = defaults | self.rate_limits
        return {
            rule: None if limit.strip().lower() == RATE_LIMIT_OFF else limit
            for rule, limit in merged.items()
        }

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return upper

    @field_validator(
        "access_token_ttl", "refresh_token_ttl", "payment_timeout", "dispute_window", mode="before"
    )
    @classmethod
    def _seconds_as_duration(cls, value: object) -> object:
        # An environment variable is text: "900" means seconds, as an int would.
        return int(value) if isinstance(value, str) and value.isdigit() else value

    @field_validator("payment_timeout", "dispute_window")
    @classmethod
    def _positive_deadline(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @field_validator("postgres_dsn")
    @classmethod
    def _postgres_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("elasticsearch_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_scheme(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://", "chdb://")):
            raise ValueError("must start with http://, https:// or chdb://")
        return value

    @model_validator(mode="after")
    def _secrets_fit_the_environment(self) -> Settings:
        secret = self.jwt_secret.get_secret_value()
        if self.environment is not Environment.DEVELOPMENT:
            if secret == DEVELOPMENT_JWT_SECRET:
                raise ValueError(
                    f"MERCATO_JWT_SECRET must be set outside development "
                    f"(environment is {self.environment.value})"
                )
            if len(secret) < MIN_JWT_SECRET_LENGTH:
                raise ValueError(
                    f"MERCATO_JWT_SECRET must be at least {MIN_JWT_SECRET_LENGTH} characters "
                    f"outside development (it has {len(secret)})"
                )
        webhook_secret = self.payment_webhook_secret.get_secret_value()
        if (
            self.environment is not Environment.DEVELOPMENT
            and webhook_secret
            and len(webhook_secret) < MIN_WEBHOOK_SECRET_LENGTH
        ):
            raise ValueError(
                f"MERCATO_PAYMENT_WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET_LENGTH} "
                f"characters outside development (it has {len(webhook_secret)}); "
                f"leave it empty to derive it from MERCATO_JWT_SECRET"
            )
        if self.password_hash_memory_kib < 8 * self.password_hash_parallelism:
            raise ValueError(
                "MERCATO_PASSWORD_HASH_MEMORY_KIB must be at least 8 x "
                "MERCATO_PASSWORD_HASH_PARALLELISM (an argon2 rule)"
            )
        if self.access_token_ttl <= timedelta(0) or self.refresh_token_ttl <= timedelta(0):
            raise ValueError("token lifetimes must be positive")
        if self.postgres_pool_min > self.postgres_pool_max:
            raise ValueError("MERCATO_POSTGRES_POOL_MIN must not exceed MERCATO_POSTGRES_POOL_MAX")
        return self

    @property
    def clickhouse_target(self) -> str:
        """The ClickHouse DSN to connect to: the configured URL or chdb inside data_dir."""
        return self.clickhouse_url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"


class SettingsError(Exception):
    """Settings could not be loaded; the message is one line per problem, fit for a terminal."""


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, turning pydantic's report into a short message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"invalid setting MERCATO_{field.upper()}: {message}" if field else message)
    return "\n".join(lines)
