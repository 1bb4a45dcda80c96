"""Quartile and moment signatures on hand-computed arrays."""

import numpy as np
import pytest

from demogen.measure.layers import SLOTS
from demogen.measure.signature import feature_names, moment_signature, quartile_signature


def test_quartiles_and_fences_without_outliers():
    # Q1 = 2, Q2 = 3, Q3 = 4, IQR = 2: whiskers at -1 and 7, so the fences are the extremes.
    np.testing.assert_allclose(quartile_signature([5, 1, 4, 2, 3]), [1, 2, 3, 4, 5])


def test_fences_are_the_most_extreme_points_inside_the_whiskers():
    # Q1 = 3.25, Q2 = 5.5, Q3 = 7.75 (linear interpolation), IQR = 4.5: whiskers at -3.5 and
    # 14.5, so 100 and -40 are outliers and the fences are 1 and 9.
    data = [1, 2, 3, 4, 5, 6, 7, 8, 9, 100]
    np.testing.assert_allclose(quartile_signature(data), [1, 3.25, 5.5, 7.75, 9])
    data = [-40, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    # Q1 = 2.25, Q2 = 4.5, Q3 = 6.75, IQR = 4.5: whiskers at -4.5 and 13.5.
    np.testing.assert_allclose(quartile_signature(data), [1, 2.25, 4.5, 6.75, 9])


def test_fence_on_the_whisker_itself_is_kept():
    # Q1 = 1, Q3 = 2, IQR = 1: the upper whisker is 3.5, and 3.5 itself lies inside; 3.5001
    # (same quartiles) lies outside, and the fence falls back to 2.
    assert quartile_signature([1, 1, 1, 2, 2, 3.5])[4] == 3.5
    assert quartile_signature([1, 1, 1, 2, 2, 3.5001])[4] == 2


def test_moments_are_sign_preserving_roots():
    np.testing.assert_allclose(moment_signature([1, 2]),
                               [1.5, 2.5 ** 0.5, 4.5 ** (1 / 3), 8.5 ** 0.25, 16.5 ** 0.2])
    # mean = -0.5, mean of cubes = (-8 + 1) / 2 = -3.5, mean of fifth powers = -15.5.
    got = moment_signature([-2, 1])
    np.testing.assert_allclose(got[[0, 2, 4]], [-0.5, -(3.5 ** (1 / 3)), -(15.5 ** 0.2)])
    np.testing.assert_allclose(got[[1, 3]], [2.5 ** 0.5, 8.5 ** 0.25])


def test_empty_distribution_gives_nan():
    assert np.isnan(quartile_signature([])).all()
    assert np.isnan(moment_signature([])).all()


def test_feature_names_follow_the_fixed_order():
    names = feature_names(SLOTS)
    assert len(names) == 20
    assert names[:5] == ["input.lower_fence", "input.q1", "input.q2", "input.q3",
                         "input.upper_fence"]
    assert names[13] == "h2.q3"
    assert feature_names(SLOTS, "moment")[-1] == "h3.m5"
    with pytest.raises(ValueError, match="unknown statistic"):
        feature_names(SLOTS, "deciles")
