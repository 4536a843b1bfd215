"""Logs: JSON lines carrying the trace, the request and the tenant; readable lines at a terminal."""

from __future__ import annotations

import contextvars
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from uuid import UUID

import pytest
from opentelemetry.sdk.trace import TracerProvider

from infrastructure.telemetry.context import bind_tenant, bound_request_id
from infrastructure.telemetry.logging import (
    JsonFormatter,
    ReadableFormatter,
    configure_logging,
)

pytestmark = pytest.mark.unit

logger = logging.getLogger("mercato.test")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_names_the_time_level_logger_and_message() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    logger.info("order %s placed", "o-1")
    (line,) = json_lines(stream)
    assert line["level"] == "INFO"
    assert line["logger"] == "mercato.test"
    assert line["message"] == "order o-1 placed"
    timestamp = str(line["timestamp"])
    assert timestamp.endswith("Z")
    assert datetime.fromisoformat(timestamp).tzinfo == UTC
    assert "trace_id" not in line and "request_id" not in line and "tenant" not in line


def test_a_json_line_names_the_trace_span_request_and_tenant_it_was_written_in() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    tracer = TracerProvider().get_tracer("test")

    def serve_a_request() -> tuple[int, int]:
        with (
            bound_request_id("req-1"),
            tracer.start_as_current_span("POST /orders") as span,
        ):
            bind_tenant("acme")
            logger.info("placing")
            return span.get_span_context().trace_id, span.get_span_context().span_id

    # The tenant holds to the end of the task that binds it: a context of its own keeps it here.
    trace_id, span_id = contextvars.copy_context().run(serve_a_request)
    (line,) = json_lines(stream)
    assert line["trace_id"] == f"{trace_id:032x}"
    assert line["span_id"] == f"{span_id:016x}"
    assert line["request_id"] == "req-1"
    assert line["tenant"] == "acme"


def test_an_exception_is_one_field_of_its_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    try:
        raise ValueError("the price is negative")
    except ValueError:
        logger.exception("could not apply")
    (line,) = json_lines(stream)
    assert line["message"] == "could not apply"
    assert line["level"] == "ERROR"
    exception = str(line["exception"])
    assert exception.startswith("Traceback")
    assert "ValueError: the price is negative" in exception


def test_extra_fields_are_logged_and_what_json_cannot_hold_as_text() -> None:
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)
    order_id = UUID("12345678-1234-5678-1234-567812345678")
    logger.info("placed", extra={"order_id": order_id, "lines": 2, "request_id": "req-9"})
    (line,) = json_lines(stream)
    assert line["order_id"] == str(order_id)
    assert line["lines"] == 2
    assert line["request_id"] == "req-9"


def test_records_below_the_level_are_not_written() -> None:
    stream = io.StringIO()
    configure_logging("warning", json=True, stream=stream)
    logger.info("quiet")
    logger.warning("loud")
    assert [line["message"] for line in json_lines(stream)] == ["loud"]


def test_configuring_again_replaces_the_handler_instead_of_adding_one() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", json=True, stream=first)
    configure_logging("INFO", json=True, stream=second)
    logger.info("once")
    assert first.getvalue() == ""
    assert len(json_lines(second)) == 1


def test_a_terminal_gets_readable_lines_and_anything_else_json() -> None:
    assert isinstance(configure_logging("INFO", stream=Terminal()).formatter, ReadableFormatter)
    assert isinstance(configure_logging("INFO", stream=io.StringIO()).formatter, JsonFormatter)
    assert isinstance(
        configure_logging("INFO", json=True, stream=Terminal()).formatter, JsonFormatter
    )


def test_a_readable_line_ends_with_its_context() -> None:
    stream = Terminal()
    configure_logging("INFO", stream=stream)
    with bound_request_id("req-2"):
        logger.warning("slow append")
    line = stream.getvalue().strip()
    assert " WARNING mercato.test: slow append [request_id=req-2]" in line
