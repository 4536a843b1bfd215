"""Mercato's domain model: aggregates, value objects, errors and pure rules.

Imports only the standard library and `eventsourcing.domain` (an import-linter contract and
`tests/unit/domain/test_domain_imports.py` hold us to it). No I/O and no clock reads: where a
rule needs the time, it is passed in.

How an aggregate is written here:
- A classmethod factory (`Account.register`, `Order.place`, …) validates and normalises, then
  calls the class, whose `@event`-decorated `__init__` is the "created" event.
- A public command method checks the rules (raising a `domain.errors` error, recording nothing)
  and decides whether anything happened at all; only then does it call a private
  `@event("PastTense")` method, whose body applies the already-checked fact. Replaying events
  runs only those bodies, so old events are never judged by rules that changed later.
- Ids come from the caller (`domain.ids` derives the deterministic ones).

Event fields are plain data a codec can serialise from the event classes' type hints: `UUID`,
`str`, `int`, `datetime`, `None`, `StrEnum` members, the frozen dataclasses `Money` and
`OrderLine`, and tuples of those.
"""
