"""The embedded twin of the Elasticsearch search sink: SQLite FTS5 beside the document sink.

It *is* the SQLite document sink (`SqliteDocumentSink`: documents, routing and checkpoints in one
file, a batch and its checkpoints in one transaction) plus what search needs, kept by triggers on
the documents table so that no write can update one without the other, in the same transaction:

    search_listed     a view: the listed product documents (see `application.read_models.search`)
                      as columns, derived from their JSON once, here
    search_products   those rows, materialised (a document that stops being listed loses its row)
    search_text       an FTS5 index (external content: search_products) of title and description

Queries run on the reader threads, each in one read transaction (one snapshot for the page, the
total and the facets). Relevance is FTS5's bm25 with the title weighted above the description;
sorts end with the document id, and the cursor holds the last hit's sort value and id, resumed
with a keyset condition.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from application.read_models.documents import Document
from application.read_models.search import (
    DESCRIPTION_WEIGHT,
    FACET_SIZE,
    TITLE_WEIGHT,
    Facets,
    SearchPage,
    SearchQuery,
    Sort,
    SortKey,
    decode_cursor,
    encode_cursor,
    facet_counts,
    hit_of,
)
from infrastructure.read_models.sqlite_documents import SqliteDocumentSink
from infrastructure.sqlite_schema import apply_migrations, transaction

_LISTED = """
CREATE VIEW search_listed AS
SELECT projection, target, doc_id,
       coalesce(json_extract(body, '$.tenant'), '') AS tenant,
       coalesce(json_extract(body, '$.fields.title'), '') AS title,
       coalesce(json_extract(body, '$.fields.description'), '') AS description,
       CASE json_type(body, '$.fields.tags') WHEN 'array'
            THEN (SELECT json_group_array(value) FROM json_each(body, '$.fields.tags')
                  WHERE type = 'text')
            ELSE '[]' END AS tags,
       coalesce(json_extract(body, '$.fields.kind'), '') AS kind,
       coalesce(json_extract(body, '$.fields.seller_id'), '') AS seller_id,
       coalesce(json_extract(body, '$.fields.price.currency'), '') AS currency,
       coalesce(json_extract(body, '$.fields.price.amount'), 0) AS price_amount,
       json_extract(body, '$.fields.created_at') AS created_at,
       coalesce(json_extract(body, '$.fields.sales_count'), 0) AS sales_count
FROM read_model_documents
WHERE json_type(body, '$.fields.published') = 'true'
  AND json_type(body, '$.fields.created_at') = 'text'
"""

_COLUMNS = (
    "projection, target, doc_id, tenant, title, description, tags, kind, seller_id, currency,"
    " price_amount, created_at, sales_count"
)


def _refresh_row(new_or_old: str) -> str:
    """Trigger statements: replace the search row of the document named by NEW or OLD."""
    key = f"projection = {new_or_old}.projection AND target = {new_or_old}.target"
    key += f" AND doc_id = {new_or_old}.doc_id"
    statements = f"DELETE FROM search_products WHERE {key};"
    if new_or_old == "NEW":
        statements += (
            f" INSERT INTO search_products ({_COLUMNS})"
            f" SELECT {_COLUMNS} FROM search_listed WHERE {key};"
        )
    return statements


# Append new migrations; never edit one that has shipped.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        _LISTED,
        "CREATE TABLE search_products (id INTEGER PRIMARY KEY, projection TEXT NOT NULL,"
        " target TEXT NOT NULL, doc_id TEXT NOT NULL, tenant TEXT NOT NULL, title TEXT NOT NULL,"
        " description TEXT NOT NULL, tags TEXT NOT NULL, kind TEXT NOT NULL,"
        " seller_id TEXT NOT NULL, currency TEXT NOT NULL, price_amount INTEGER NOT NULL,"
        " created_at TEXT NOT NULL, sales_count INTEGER NOT NULL,"
        " UNIQUE (projection, target, doc_id))",
        "CREATE INDEX search_products_by_time"
        " ON search_products (projection, target, tenant, created_at)",
        # remove_diacritics 0: Elasticsearch's standard analyzer keeps accents too.
        "CREATE VIRTUAL TABLE search_text USING fts5(title, description,"
        " content='search_products', content_rowid='id',"
        " tokenize='unicode61 remove_diacritics 0')",
        "CREATE TRIGGER search_text_insert AFTER INSERT ON search_products BEGIN"
        " INSERT INTO search_text (rowid, title, description)"
        " VALUES (NEW.id, NEW.title, NEW.description); END",
        "CREATE TRIGGER search_text_delete AFTER DELETE ON search_products BEGIN"
        " INSERT INTO search_text (search_text, rowid, title, description)"
        " VALUES ('delete', OLD.id, OLD.title, OLD.description); END",
        "CREATE TRIGGER search_document_inserted AFTER INSERT ON read_model_documents BEGIN "
        + _refresh_row("NEW")
        + " END",
        "CREATE TRIGGER search_document_updated AFTER UPDATE ON read_model_documents BEGIN "
        + _refresh_row("NEW")
        + " END",
        "CREATE TRIGGER search_document_deleted AFTER DELETE ON read_model_documents BEGIN "
        + _refresh_row("OLD")
        + " END",
        # Documents stored before this migration (none in a new file).
        f"INSERT INTO search_products ({_COLUMNS}) SELECT {_COLUMNS} FROM search_listed",
    ),
]

_ORDER: dict[Sort, tuple[str, str, tuple[type, ...]]] = {
    # sort: (column, direction, the types of its cursor value)
    Sort.RELEVANCE: ("m.score", "ASC", (float, int)),  # bm25: lower is better
    Sort.PRICE_ASC: ("p.price_amount", "ASC", (int,)),
    Sort.PRICE_DESC: ("p.price_amount", "DESC", (int,)),
    Sort.NEWEST: ("p.created_at", "DESC", (str,)),
    Sort.BEST_SELLING: ("p.sales_count", "DESC", (int,)),
}


class SqliteSearchSink(SqliteDocumentSink):
    """`ReadModelSink` and `SearchIndex` on one SQLite file."""

    @classmethod
    async def open(cls, path: str | Path, **options: Any) -> Self:
        """Create the file if needed and apply pending migrations (documents, then search)."""
        sink = await super().open(path, **options)
        try:
            await sink._write(_migrate)
        except BaseException:
            await sink.close()
            raise
        return sink

    async def search(self, projection: str, target: str, query: SearchQuery) -> SearchPage:
        sort = query.effective_sort
        after = None
        if query.cursor is not None:
            after = decode_cursor(query.cursor, sort, _ORDER[sort][2])
        return await self._read(_search, projection, target, query, after)


def _migrate(db: sqlite3.Connection) -> None:
    apply_migrations(db, "search_schema_migrations", MIGRATIONS)


@dataclass
class _Filtered:
    """The filtered result as SQL: `FROM {source} WHERE {where}`, and the parameters of each."""

    source: str = "search_products p"
    source_params: list[Any] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    where_params: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, projection: str, target: str, query: SearchQuery) -> _Filtered:
        filtered = cls()
        if query.terms:
            # Each word a quoted FTS5 string (so no word is read as an operator), all required.
            match = " AND ".join('"' + term.replace('"', '""') + '"' for term in query.terms)
            filtered.source = (
                "(SELECT rowid AS id, bm25(search_text, ?, ?) AS score FROM search_text"
                " WHERE search_text MATCH ?) m JOIN search_products p ON p.id = m.id"
            )
            filtered.source_params = [TITLE_WEIGHT, DESCRIPTION_WEIGHT, match]
        filtered.add("p.projection = ?", projection)
        filtered.add("p.target = ?", target)
        filtered.add("p.tenant = ?", query.tenant_id)
        if query.kinds:
            filtered.add(f"p.kind IN ({', '.join('?' * len(query.kinds))})", *query.kinds)
        for tag in query.tags:
            filtered.add("EXISTS (SELECT 1 FROM json_each(p.tags) WHERE value = ?)", tag)
        for condition, value in (
            ("p.price_amount >= ?", query.min_price),
            ("p.price_amount <= ?", query.max_price),
            ("p.currency = ?", query.currency),
            ("p.seller_id = ?", query.seller_id),
        ):
            if value is not None:
                filtered.add(condition, value)
        return filtered

    def add(self, condition: str, *params: Any) -> None:
        self.where.append(condition)
        self.where_params += params

    def select(self, columns: str, *, join: str = "", tail: str = "") -> str:
        where = " AND ".join(self.where)
        return f"SELECT {columns} FROM {self.source}{join} WHERE {where}{tail}"

    def params(self, *tail: Any) -> list[Any]:
        return [*self.source_params, *self.where_params, *tail]


def _search(
    db: sqlite3.Connection,
    projection: str,
    target: str,
    query: SearchQuery,
    after: SortKey | None,
) -> SearchPage:
    sort = query.effective_sort
    column, direction, _ = _ORDER[sort]
    filtered = _Filtered.of(projection, target, query)
    keyset, keyset_params = "", []
    if after is not None:
        beyond = ">" if direction == "ASC" else "<"
        keyset = f" AND ({column} {beyond} ? OR ({column} = ? AND p.doc_id > ?))"
        keyset_params = [after[0], after[0], after[1]]
    order = f" ORDER BY {column} {direction}, p.doc_id ASC LIMIT ?"
    with transaction(db, "BEGIN"):
        rows = db.execute(
            filtered.select(f"p.doc_id, {column}", tail=keyset + order),
            filtered.params(*keyset_params, query.limit + 1),
        ).fetchall()
        page = rows[: query.limit]
        bodies = dict(
            db.execute(
                "SELECT doc_id, body FROM read_model_documents WHERE projection = ?"
                f" AND target = ? AND doc_id IN ({', '.join('?' * len(page))})",
                (projection, target, *(doc_id for doc_id, _ in page)),
            ).fetchall()
        )
        (total,) = db.execute(filtered.select("count(*)"), filtered.params()).fetchone()
        kinds = db.execute(
            filtered.select("p.kind, count(*) AS n", tail=_FACET_ORDER.format("p.kind")),
            filtered.params(FACET_SIZE),
        ).fetchall()
        tags = db.execute(
            filtered.select(
                "t.value, count(*) AS n",
                join=", json_each(p.tags) t",
                tail=_FACET_ORDER.format("t.value"),
            ),
            filtered.params(FACET_SIZE),
        ).fetchall()
    hits = tuple(hit_of(Document.from_json(json.loads(bodies[doc_id]))) for doc_id, _ in page)
    more = len(rows) > query.limit
    return SearchPage(
        hits=hits,
        total=int(total),
        facets=Facets(kinds=facet_counts(kinds), tags=facet_counts(tags)),
        next_cursor=encode_cursor(sort, (page[-1][1], page[-1][0])) if more else None,
    )


_FACET_ORDER = " GROUP BY {0} ORDER BY n DESC, {0} ASC LIMIT ?"
