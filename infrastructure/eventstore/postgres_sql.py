"""The SQL of the Postgres event store, kept apart so the adapter reads as logic.

## Why positions are built from transaction ids (gap-free global order without LOCK TABLE)

A reader that follows the log by position must never pass a position at which an event may
still appear. With a plain sequence that is not true: sequence values are handed out when a row
is inserted, not when its transaction commits ("sequence values ... are not rolled back" and are
assigned outside transaction order: https://www.postgresql.org/docs/15/functions-sequence.html),
so transaction A can take position 10, B take 11, B commit, a reader pass 11, and A commit 10
behind it. The stock `eventsourcing` recorder avoids that with `LOCK TABLE ... IN EXCLUSIVE
MODE`, which serialises every writer.

Mercato instead makes the position *follow the transaction id*: position =
`pg_current_xact_id() << 20 | ordinal` (the ordinal numbers the rows of one statement, so one
transaction holds up to 2^20 - 1 events). Readers only read positions below
`pg_snapshot_xmin(pg_current_snapshot()) << 20`. `pg_snapshot_xmin` is "the lowest transaction ID
that was still active" when the snapshot was taken; every transaction id below it "is either
committed and visible, or rolled back and dead"
(https://www.postgresql.org/docs/15/functions-info.html#FUNCTIONS-PG-SNAPSHOT). So every event
below the watermark is final, and any transaction that commits later has an id >= the watermark,
hence positions above everything a reader has already passed. Writers never wait for each other
(beyond the row locks of one stream's primary key). The price: positions are not contiguous (count
events with `count_between`), and one long-running writing transaction anywhere in the cluster
holds the watermark back (latency, never loss) until it ends.
"""

from __future__ import annotations

ORDINAL_BITS = 20
MAX_EVENTS_PER_TRANSACTION = (1 << ORDINAL_BITS) - 1

_COLUMNS = (
    "stream_id, stream_version, position, event_id, type, schema_version, tenant_id,"
    " recorded_at, correlation_id, causation_id, traceparent, payload"
)

# One statement (so one round trip and, in autocommit, one transaction) appends a whole batch of
# appends: it checks every append's expected version and idempotency key, inserts the events of
# those that pass and records their idempotency keys. Appends that fail a check insert nothing and
# the caller learns which from the ordinals returned. A race with another transaction on the same
# stream or key surfaces as a unique violation of the whole statement; the adapter then retries
# the appends one by one. The CTEs are MATERIALIZED so each stream's head is looked up once, not
# once per event (an inlined CTE re-runs its subquery per row: 3.3 ms -> 1.1 ms for 100 events).
APPEND_BATCH = f"""
WITH input AS (
    SELECT * FROM unnest(
        $1::text[], $2::bigint[], $3::bigint[], $4::uuid[], $5::text[], $6::integer[],
        $7::text[], $8::uuid[], $9::uuid[], $10::text[], $11::bytea[], $12::text[], $13::text[]
    ) WITH ORDINALITY AS t(
        stream_id, version_offset, expected, event_id, type, schema_version,
        tenant_id, correlation_id, causation_id, traceparent, payload, idem_key, fingerprint, ord
    )
),
stream_head AS MATERIALIZED (
    SELECT s.stream_id,
           coalesce((SELECT max(e.stream_version) FROM mercato_events e
                     WHERE e.stream_id = s.stream_id), 0) AS version
    FROM (SELECT DISTINCT stream_id FROM input) s
),
accepted AS MATERIALIZED (
    SELECT i.*, h.version AS head_version
    FROM input i JOIN stream_head h USING (stream_id)
    WHERE (i.expected < 0 OR i.expected = h.version)
      AND NOT EXISTS (SELECT 1 FROM mercato_idempotency_keys k
                      WHERE k.tenant_id = i.tenant_id AND k.key = i.idem_key)
),
inserted AS (
    INSERT INTO mercato_events (
        stream_id, stream_version, position, event_id, type, schema_version, tenant_id,
        correlation_id, causation_id, traceparent, payload)
    SELECT stream_id, head_version + version_offset,
           (pg_current_xact_id()::text::bigint << {ORDINAL_BITS}) + ord,
           event_id, type, schema_version, tenant_id, correlation_id, causation_id,
           traceparent, payload
    FROM accepted
    RETURNING position, stream_id, stream_version
),
keys AS (
    INSERT INTO mercato_idempotency_keys (
        tenant_id, key, stream_id, fingerprint, stream_version, positions)
    SELECT a.tenant_id, a.idem_key, a.stream_id, a.fingerprint,
           max(n.stream_version), array_agg(n.position ORDER BY n.position)
    FROM inserted n
    JOIN accepted a ON a.ord = (n.position & {MAX_EVENTS_PER_TRANSACTION})
    WHERE a.idem_key <> ''
    GROUP BY a.tenant_id, a.idem_key, a.stream_id, a.fingerprint
)
SELECT position, stream_version FROM inserted
"""

SAFE_WATERMARK = f"(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << {ORDINAL_BITS})"

SELECT_IDEMPOTENCY_KEY = """
SELECT stream_id, fingerprint, stream_version, positions
FROM mercato_idempotency_keys WHERE tenant_id = $1 AND key = $2
"""

SELECT_STREAM_VERSION = (
    "SELECT coalesce(max(stream_version), 0) FROM mercato_events WHERE stream_id = $1"
)

SELECT_STREAM = f"""
SELECT {_COLUMNS} FROM mercato_events
WHERE stream_id = $1 AND stream_version >= $2 AND stream_version <= $3
  AND position <= $4 AND recorded_at <= $5
ORDER BY stream_version
"""


def select_log(*, safe: bool) -> str:
    """The global-log query; `safe=False` drops the watermark (only to prove tests catch it).

    $3 (event types) and $4 (tenant) are NULL to match everything.
    """
    watermark = f"AND position < {SAFE_WATERMARK}" if safe else ""
    return f"""
SELECT {_COLUMNS} FROM mercato_events
WHERE position > $1 {watermark}
  AND ($3::text[] IS NULL OR type = ANY($3::text[]))
  AND ($4::text IS NULL OR tenant_id = $4::text)
ORDER BY position LIMIT $2
"""


def select_head(*, safe: bool) -> str:
    watermark = f"WHERE position < {SAFE_WATERMARK}" if safe else ""
    return f"SELECT coalesce(max(position), 0) FROM mercato_events {watermark}"


IS_FINAL = f"SELECT $1::bigint < {SAFE_WATERMARK}"

SELECT_ANY_AFTER = "SELECT EXISTS (SELECT 1 FROM mercato_events WHERE position > $1)"

FIRST_POSITION_AT_TIME = (
    "SELECT min(position) FROM mercato_events"
    f" WHERE recorded_at >= $1 AND position < {SAFE_WATERMARK}"
)

COUNT_BETWEEN = "SELECT count(*) FROM mercato_events WHERE position > $1 AND position <= $2"

UPSERT_SNAPSHOT = """
INSERT INTO mercato_snapshots (stream_id, stream_version, type, state, tenant_id, taken_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (stream_id, stream_version) DO NOTHING
"""

SELECT_LATEST_SNAPSHOT = """
SELECT stream_id, stream_version, type, state, tenant_id, taken_at FROM mercato_snapshots
WHERE stream_id = $1 ORDER BY stream_version DESC LIMIT 1
"""

NOTIFY_CHANNEL = "mercato_events"
