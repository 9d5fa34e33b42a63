"""Bad simulation parameters fail fast, with the parameter named, before anything is written."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from simulation.params import SimulationError, make_params
from simulation.world import simulate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"customers": 0}, "customers must be between 1"),
        ({"customers": -5}, "customers must be between 1"),
        ({"customers": True}, "customers must be an integer"),
        ({"customers": 2.5}, "customers must be an integer"),
        ({"months": 0}, "months must be between 1"),
        ({"months": -1}, "months must be between 1"),
        ({"months": "12"}, "months must be an integer"),
        ({"seed": -1}, "seed must be between 0"),
        ({"start": "2025-13-01"}, "is not an ISO date"),
        ({"start": "next tuesday"}, "is not an ISO date"),
        ({"start": datetime(2025, 1, 1)}, "not a datetime"),
        ({"start": 20250101}, "start must be a date"),
        ({"start": "2016-12-31"}, "GST began"),
        ({"start": date(2999, 1, 1)}, "must be between"),
    ],
)
def test_bad_parameters_are_refused_before_writing(tmp_path, kwargs, message):
    args = {"customers": 10, "months": 2, "seed": 1, "start": "2025-01-01"} | kwargs
    run_dir = tmp_path / "run"
    with pytest.raises(SimulationError, match=message):
        simulate(None, run_dir, **args)
    assert not run_dir.exists()


def test_good_parameters_are_normalised(tmp_path):
    p = make_params(10, 24, 42, " 2025-01-31 ", tmp_path)
    assert p.start == date(2025, 1, 31) and p.days == 730


def test_an_existing_world_is_not_overwritten_silently(tmp_path):
    (tmp_path / "gateway.sqlite").write_text("")
    with pytest.raises(SimulationError, match="overwrite=True"):
        simulate(None, tmp_path, customers=3, months=1, seed=1)
    assert (tmp_path / "gateway.sqlite").read_text() == ""
