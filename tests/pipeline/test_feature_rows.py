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
