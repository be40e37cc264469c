"""PMO-style figures on hand-computed examples."""

import pytest

from tgsci.metrics import top_k, top_k_auc


def test_top_k_ignores_invalid_and_averages_the_best():
    assert top_k([3.0, None, 1.0, 2.0, float("nan")], 2) == 1.5
    assert top_k([None], 3) is None and top_k([5.0], 10) == 5.0


def test_top_k_auc_by_hand():
    # k=2: after 1 eval {4} -> 4; after 2 {4,2} -> 3; after 3 {2,1} -> 1.5; mean = 8.5/3
    assert top_k_auc([4.0, 2.0, 1.0], k=2) == pytest.approx(8.5 / 3)


def test_early_stop_keeps_the_last_value_up_to_the_budget():
    assert top_k_auc([4.0, 2.0], budget=4, k=1) == pytest.approx((4 + 2 + 2 + 2) / 4)


def test_faster_progress_gives_a_better_auc():
    slow, fast = [5.0, 5.0, 5.0, 1.0], [1.0, 5.0, 5.0, 5.0]
    assert top_k_auc(fast, k=1) < top_k_auc(slow, k=1)
