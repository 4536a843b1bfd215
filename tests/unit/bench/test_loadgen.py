"""The load generator's pure parts: the open-loop schedule, the job, the summary."""

from __future__ import annotations

import pytest

from mercato_bench.loadgen import (
    CLIENT_ERROR,
    Job,
    Records,
    due_until,
    position_of,
    schedule,
    summarize,
)

pytestmark = pytest.mark.unit


def test_the_schedule_sends_request_i_at_i_over_rate() -> None:
    offsets = schedule(4, 2.0)
    assert offsets == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def test_the_schedule_holds_rate_times_seconds_requests() -> None:
    assert len(schedule(1000, 20.0)) == 20_000
    assert len(schedule(250, 0.5)) == 125
    assert schedule(0, 1.0) == []
    assert schedule(10, 0.0) == []


def test_late_requests_are_all_due_at_once_and_none_is_skipped() -> None:
    offsets = schedule(10, 1.0)
    assert due_until(offsets, 0, -0.01) == 0
    assert due_until(offsets, 0, 0.0) == 1
    # The generator woke up late: everything scheduled up to now goes out together.
    assert due_until(offsets, 1, 0.55) == 6
    assert due_until(offsets, 6, 5.0) == len(offsets)


def test_the_summary_leaves_the_warmup_out_and_counts_errors_by_status() -> None:
    offsets = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    latencies = [9.0, 9.0, 0.010, 0.020, 0.030, 0.040]
    statuses = [201, 201, 201, 201, 503, CLIENT_ERROR]
    summary = summarize(offsets, latencies, statuses, warmup=1.0, duration=2.0)
    assert summary["requests"] == 4
    assert summary["ok"] == 2
    assert summary["errors"] == {"0": 1, "503": 1}
    assert summary["error_count"] == 2
    assert summary["achieved_rate"] == 1.0
    assert summary["offered_rate"] == 2.0
    assert summary["latency_ms"]["p50"] == pytest.approx(15.0)
    assert summary["latency_ms"]["max"] == pytest.approx(20.0)
    assert summary["latency_all_ms"]["max"] == pytest.approx(40.0)
    assert summary["send_lag_ms"] == {}


def test_a_summary_of_nothing_has_no_percentiles() -> None:
    summary = summarize([], [], [], warmup=0.0, duration=1.0)
    assert summary["requests"] == 0
    assert summary["latency_ms"] == {}


def test_records_keep_columns_in_step() -> None:
    records = Records()
    assert records.add(0.0, 0.004, 0.0001, 201, 42) == 0
    assert records.add(0.01, 0.005, 0.0, 409, None) == 1
    data = records.as_json()
    assert data["statuses"] == [201, 409]
    assert data["positions"] == [42, None]
    assert len(data["offsets"]) == len(data["latencies"]) == len(data["send_lags"]) == 2


def test_the_position_comes_from_a_json_answer() -> None:
    assert position_of(b'{"version":1,"position":7340033,"order_id":"x"}') == 7340033
    assert position_of(b'{"detail":"no"}') is None
    assert position_of(b"not json") is None
    assert position_of(b"[1, 2]") is None


def test_a_job_is_read_and_checked() -> None:
    job = Job.from_json(
        {
            "base_url": "http://127.0.0.1:8000/",
            "path": "/orders",
            "rate": 500,
            "duration": 4,
            "warmup": 1,
            "bodies": [{"lines": []}],
            "tokens": ["a", "b"],
            "follow": {"path": "/analytics/sales", "token": "t", "every": 25},
        }
    )
    assert job.base_url == "http://127.0.0.1:8000"
    assert job.total_seconds == 5.0
    assert job.follow is not None and job.follow.every == 25
    assert job.follow.header == "Mercato-Min-Position"
    with pytest.raises(ValueError, match="mode"):
        Job.from_json({"base_url": "http://x", "path": "/", "mode": "burst"})
    with pytest.raises(ValueError, match="rate"):
        Job.from_json({"base_url": "http://x", "path": "/", "rate": 0})
