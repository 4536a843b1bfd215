"""Event categories: the aggregate an event type belongs to, which names its Kafka topic.

Event types are eventsourcing topics, `<module>:<Aggregate>.<Event>` (e.g.
`domain.order:Order.Placed`); the category is the aggregate's name in lower case (`order`).
"""

from __future__ import annotations


def category_of(event_type: str) -> str:
    """`domain.order:Order.Placed` → `order`; a type without a class path → its last word."""
    _, _, qualified = event_type.rpartition(":")
    return qualified.split(".", 1)[0].lower() or "unknown"


def topic_of(category: str, prefix: str) -> str:
    """The Kafka topic of a category, e.g. `mercato.order` for prefix `mercato.`."""
    return f"{prefix}{category}"


def kafka_partition_id(topic: str, partition: int) -> str:
    """How a Kafka topic-partition is named in read-model checkpoints."""
    return f"{topic}:{partition}"
