"""FeatureRows: a batch's feature dicts read once into a matrix, any names a selection of it."""

from __future__ import annotations

import numpy as np

from pipeline.detection.vocabulary import FeatureRows


def test_rows_with_the_same_features_are_read_once_and_any_names_are_a_selection() -> None:
    rows = FeatureRows([{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 4.0, "b": 5.0, "c": 6.0}])
    assert rows.same_keys()
    np.testing.assert_array_equal(rows.matrix(("c", "a")), [[3.0, 1.0], [6.0, 4.0]])
    np.testing.assert_array_equal(rows.matrix(("b", "missing")), [[2.0, 0.0], [5.0, 0.0]])
    assert rows.matrix(("c", "a")) is rows.matrix(("c", "a")), "built once per names"
    rows.matrix(("a",))[0, 0] = 99.0
    assert rows.matrix(("c", "a"))[0, 1] == 1.0, "a selection is a copy: one matrix cannot change another"


def test_rows_with_different_features_read_each_name_with_0_for_a_missing_one() -> None:
    rows = FeatureRows([{"a": 1.0}, {"b": 2.0, "a": 3.0}])
    assert not rows.same_keys()
    np.testing.assert_array_equal(rows.matrix(("a", "b")), [[1.0, 0.0], [3.0, 2.0]])
    assert FeatureRows().matrix(("a",)).shape == (0, 1)
    assert FeatureRows.of(rows) is rows and isinstance(FeatureRows.of([{"a": 1.0}]), FeatureRows)


def test_rows_of_a_matrix_become_dicts_only_when_asked_for_and_are_kept() -> None:
    matrix = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    rows = FeatureRows.of_matrix(("a", "b"), matrix)
    assert len(rows) == 3 and rows.names == ("a", "b") and rows.same_keys()
    assert rows._rows == [None, None, None], "no dict before one is asked for"
    assert rows[1] == {"a": 3.0, "b": 4.0} and rows[1] is rows[1]
    assert rows._rows[0] is None and rows._rows[2] is None
    np.testing.assert_array_equal(rows.matrix(("b",)), [[2.0], [4.0], [6.0]])
    taken = rows.take([2, 1])
    assert taken[1] is rows[1], "a row already made is handed over, not made again"
    np.testing.assert_array_equal(taken.matrix(("a", "b")), [[5.0, 6.0], [3.0, 4.0]])
    explained = {"a": 3.0, "b": 4.0, "why": 1.0}
    rows.replace(1, explained)
    assert rows[1] is explained and list(rows) == [{"a": 1.0, "b": 2.0}, explained, {"a": 5.0, "b": 6.0}]
    assert FeatureRows.of_matrix((), np.empty((2, 0))).names == ()
    assert FeatureRows([{"a": 1.0}, {"b": 2.0}]).names is None
