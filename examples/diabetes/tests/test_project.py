"""Unit tests of the project's code (run by ``batchscore ci``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data
import data_tests
import evaluate
import train

PARAMS = {"train": {"alpha": 1.0}, "data": {"seed": 0}}


def test_the_data_passes_its_own_tests():
    frame = data.load()
    assert data_tests.check(frame, data.reference()) == []


def test_a_shifted_column_is_named():
    frame = data.load()
    frame["bmi"] = frame["bmi"] + 15
    problems = data_tests.check(frame, data.reference())
    assert len(problems) == 1 and "'bmi'" in problems[0]


def test_training_beats_predicting_the_mean():
    frame = data.load()
    model = train.train(frame[data.FEATURES], frame[data.TARGET], PARAMS)
    metrics = evaluate.evaluate(model, frame[data.FEATURES], frame[data.TARGET])
    assert metrics["r2"] > 0.4 and metrics["rmse"] < frame[data.TARGET].std()
