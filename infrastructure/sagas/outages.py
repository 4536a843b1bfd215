"""The saga stores' and event stores' own errors that mean "out of reach for now", which the
saga runner waits out (`Marketplace.transient_failures`) rather than park a saga for."""

from __future__ import annotations

import sqlite3

import asyncpg

STORE_OUTAGES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # the session is gone (08xxx), ConnectionDoesNotExist too
    asyncpg.InterfaceError,  # the client's view: a connection closed or a pool closing
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # a serialization failure or a deadlock
    sqlite3.OperationalError,  # "database is locked" past the busy timeout
)
