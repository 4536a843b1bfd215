"""The lag scenario's pure parts: when a watermark reached a position, and the lags."""

from __future__ import annotations

import pytest

from mercato_bench.lag import Observations, commands_of, lags

pytestmark = pytest.mark.unit


def observed(*points: tuple[float, int]) -> Observations:
    observations = Observations()
    for at, seen in points:
        observations.record(at - 0.0002, at, seen)
    return observations


def test_only_rises_of_the_watermark_are_kept() -> None:
    observations = observed((1.0, 10), (1.001, 10), (1.002, 30), (1.003, 20), (1.004, 40))
    assert observations.times == [1.0, 1.002, 1.004]
    assert observations.watermarks == [10, 30, 40]
    assert observations.polls == 5


def test_a_position_is_visible_at_the_first_read_at_or_above_it() -> None:
    observations = observed((1.0, 10), (1.002, 30), (1.004, 40))
    assert observations.visible_at(5) == 1.0
    assert observations.visible_at(10) == 1.0
    assert observations.visible_at(11) == 1.002
    assert observations.visible_at(40) == 1.004
    assert observations.visible_at(41) is None


def test_lags_run_from_the_answer_and_never_go_below_zero() -> None:
    observations = observed((1.0, 10), (1.010, 30), (1.050, 40))
    found, unseen, early = lags([1.005, 1.001, 1.0, 1.2], [10, 25, 40, 50], observations)
    assert found == pytest.approx([0.0, 0.009, 0.05])
    assert unseen == 1
    assert early == 1


def test_the_resolution_reports_the_achieved_poll_period() -> None:
    observations = observed((1.0, 1), (1.002, 1), (1.004, 2))
    resolution = observations.resolution()
    assert resolution["polls"] == 3
    assert resolution["mean_poll_period_ms"] == pytest.approx(2.0)
    assert resolution["median_read_ms"] == pytest.approx(0.2)


def test_commands_are_the_measured_successful_ones_with_a_position() -> None:
    result = {
        "t0_monotonic": 100.0,
        "warmup": 1.0,
        "records": {
            "offsets": [0.5, 1.0, 1.5, 2.0],
            "latencies": [0.01, 0.02, 0.03, 0.04],
            "statuses": [201, 201, 503, 201],
            "positions": [1, 2, None, 4],
        },
    }
    answered, positions, indexes = commands_of(result)
    assert answered == pytest.approx([101.02, 102.04])
    assert positions == [2, 4]
    assert indexes == [1, 3]
