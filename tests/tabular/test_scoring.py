"""Row checks: what a model declares is enforced per row; the rest of the rows are scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from batchscore.tabular import scoring
from batchscore.tabular.models import ColumnSpec, LoadedModel
from batchscore.tabular.scoring import Reject, ScoringError, _missing, prediction_frame, score_rows


class Recorder:
    """predict = the sum of the columns; remembers what it was given."""

    def __init__(self) -> None:
        self.seen: list[pd.DataFrame] = []

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.seen.append(frame)
        return frame.astype(float).sum(axis=1).to_numpy()


def typed(*columns: ColumnSpec, allow_nan: bool = False) -> tuple[LoadedModel, Recorder]:
    rec = Recorder()
    return LoadedModel("m", rec.predict, columns=list(columns), allow_nan=allow_nan), rec


def frame(**columns: list[object]) -> pd.DataFrame:
    out = pd.DataFrame(columns)
    out.index = pd.RangeIndex(100, 100 + len(out))  # row numbers of a later mini-batch
    return out


def test_declared_types_convert_and_reject_per_row():
    model, rec = typed(ColumnSpec("a", "long"), ColumnSpec("b", "double"),
                       ColumnSpec("c", "boolean"), ColumnSpec("d", "double", required=False))
    rows = frame(a=["1", "2.5", "3", "4", "x"], b=["1.5", "2", None, "4", "5"],
                 c=["true", "no", "1", "maybe", "yes"], d=[None, 1.0, 2.0, 3.0, 4.0])
    scored, rejects = score_rows(model, rows, ["a", "b", "c", "d"], "p")
    assert rejects == [
        Reject(101, "a", "value '2.5' is not an integer (the model takes long)"),
        Reject(102, "b", "missing value"),
        Reject(103, "c", "value 'maybe' is not true or false (the model takes boolean)"),
        Reject(104, "a", "value 'x' is not a number (the model takes long)"),
    ]
    assert scored.index.tolist() == [100] and scored["p"].tolist() == [3.5]
    given = rec.seen[0]
    assert str(given["a"].dtype) == "int64" and str(given["b"].dtype) == "float64"
    assert given["c"].tolist() == [True]


def test_optional_declared_column_may_be_absent_or_missing():
    model, rec = typed(ColumnSpec("a", "double"), ColumnSpec("opt", "double", required=False))
    scored, rejects = score_rows(model, frame(a=[1.0, 2.0]), ["a", "opt"], "p")
    assert rejects == [] and scored["p"].tolist() == [1.0, 2.0]
    assert list(rec.seen[0].columns) == ["a"]


def test_missing_required_column_rejects_every_row():
    model, _ = typed(ColumnSpec("a", "double"), ColumnSpec("b", "double"))
    scored, rejects = score_rows(model, frame(a=[1.0, 2.0]), ["a", "b"], "p")
    assert scored.empty
    assert rejects == [Reject(100, "b", "missing column b (the model needs it)"),
                       Reject(101, "b", "missing column b (the model needs it)")]


def test_datetime_and_string_columns():
    model, rec = typed(ColumnSpec("t", "datetime"), ColumnSpec("s", "string"))
    rec_predict = rec.predict
    model.predict = lambda f: rec_predict(f.assign(t=f["t"].dt.hour, s=f["s"].str.len()))
    scored, rejects = score_rows(model, frame(t=["2024-01-01 05:00", "soon"], s=[12, "ab"]),
                                 ["t", "s"], "p")
    assert rejects == [Reject(101, "t", "value 'soon' is not a date/time (the model takes "
                                        "datetime)")]
    assert scored["p"].tolist() == [7.0]  # hour 5 + len("12")


def test_untyped_model_rejects_text_in_a_numeric_column_and_missing_values():
    rec = Recorder()
    model = LoadedModel("m", rec.predict, feature_names=["a", "b"])
    rows = frame(a=["1", "2", "oops", "4"], b=[1.0, np.nan, 3.0, 4.0])
    scored, rejects = score_rows(model, rows, ["a", "b"], "p")
    assert rejects == [Reject(101, "b", "missing value"),
                       Reject(102, "a", "value 'oops' is not a number")]
    assert scored["p"].tolist() == [2.0, 8.0]


def test_a_model_that_takes_missing_values_gets_them():
    X = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0] * 5, "b": [1.0, 0.0, 1.0, 0.0] * 5})
    hgb = HistGradientBoostingRegressor(max_iter=5).fit(X, X["b"])
    from batchscore.tabular.models import _allows_nan

    model = LoadedModel("m", hgb.predict, feature_names=["a", "b"], allow_nan=_allows_nan(hgb))
    assert model.allow_nan
    scored, rejects = score_rows(model, X.head(4), ["a", "b"], "p")
    assert rejects == [] and len(scored) == 4


def test_rows_the_model_itself_fails_on_are_found_by_halving():
    def predict(f: pd.DataFrame) -> np.ndarray:
        if (f["a"] < 0).any():
            raise ValueError("negative input\nsecond line: a must be >= 0")
        return f["a"].to_numpy() * 2

    model = LoadedModel("m", predict, feature_names=["a", "tag"])
    rows = frame(a=[1, -1, 3, 4, 5, -2, 7], tag=["x", "y", "z", "w", "v", "4", "t"])
    scored, rejects = score_rows(model, rows, ["a", "tag"], "p")
    problem = "the model failed: ValueError: second line: a must be >= 0"
    assert rejects == [Reject(101, "tag", problem), Reject(105, "", problem)]
    assert scored.index.tolist() == [100, 102, 103, 104, 106]
    assert scored["p"].tolist() == [2, 6, 8, 10, 14]


def test_a_model_failing_on_most_rows_fails_the_mini_batch(monkeypatch):
    monkeypatch.setattr(scoring, "BISECT_BUDGET", 8)

    def predict(f: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("model is broken")

    model = LoadedModel("m", predict, feature_names=["a"])
    with pytest.raises(ScoringError, match="the model fails on many of these rows: the model "
                                           "failed: RuntimeError: model is broken"):
        score_rows(model, frame(a=list(range(64))), ["a"], "p")


@pytest.mark.parametrize(("result", "columns"), [
    (np.array([1, 2]), ["p"]),
    (pd.Series([1, 2]), ["p"]),
    (np.array([[1], [2]]), ["p"]),
    (np.array([[1, 2, 3], [4, 5, 6]]), ["p_0", "p_1", "p_2"]),
    (pd.DataFrame({"x": [1, 2], 3: [0, 0]}), ["x", "3"]),
    ([0.5, 0.25], ["p"]),
])
def test_prediction_shapes(result, columns):
    got = prediction_frame(result, pd.Index([7, 9]), "p")
    assert list(got.columns) == columns and got.index.tolist() == [7, 9]


def test_wrong_number_of_predictions():
    with pytest.raises(ScoringError, match="the model returned 3 predictions for 2 rows"):
        prediction_frame(np.zeros(3), pd.Index([0, 1]), "p")
    with pytest.raises(ScoringError, match="returned a single value"):
        prediction_frame(np.float64(1.0), pd.Index([0, 1]), "p")


@pytest.mark.parametrize("col", [
    pd.Series([1.0, np.nan, 3.0]),
    pd.Series([1.0, np.nan, 3.0], dtype="float32"),
    pd.Series([1, 2, 3]),
    pd.Series([True, False, True]),
    pd.Series(pd.to_datetime(["2024-01-01", None, "2024-01-03"])),
    pd.Series(["a", None, "c"], dtype=object),
    pd.Series([1, None, 3], dtype="Int64"),
    pd.Series(["a", None, "c"], dtype="string"),
    pd.Series(["a", None, "a"], dtype="category"),
], ids=lambda c: str(c.dtype))
def test_missing_values_are_found_in_every_kind_of_column(col):
    found = _missing(col)
    expected = col.isna().to_numpy()
    if found is None:  # a column that cannot hold a missing value
        assert not expected.any() and col.dtype.kind in "iub"
    else:
        assert found.tolist() == expected.tolist()
