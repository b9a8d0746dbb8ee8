"""bench.density_blocks: a density map's blocks against the marks inside them (issue #26)."""
import numpy as np
import pytest

from bench import density_blocks


def test_blocks_sum_the_density_and_count_the_marks_of_each_whole_block():
    d = np.zeros((20, 25))
    d[:10, :10] = 0.05            # 5 cells predicted in the top-left block
    d[12, 15] = 3.0               # 3 in the block below, second column
    centres = np.array([[1.0, 1.0], [9.9, 9.9], [15.0, 12.0], [22.0, 3.0]])  # (x, y)
    # 10 px blocks: two rows x two whole columns (x 20-24 is not a whole block: left out)
    assert density_blocks.blocks(d, centres, 10) == [(2, pytest.approx(5.0)), (0, 0.0),
                                                      (0, 0.0), (1, pytest.approx(3.0))]


def test_the_table_groups_blocks_by_marks_and_gives_the_ratio_and_slope():
    pairs = [(2, 3.0), (4, 5.0), (12, 11.0), (14, 12.0)]
    rows = density_blocks.table(pairs, bins=(0, 10, 100))
    assert [r["blocks"] for r in rows] == [2, 2, 4]
    assert rows[0]["predicted / marks"] == pytest.approx(8 / 6, abs=1e-3)
    assert rows[1]["predicted / marks"] == pytest.approx(23 / 26, abs=1e-3)
    assert rows[-1]["slope"] == pytest.approx(np.polyfit([2, 4, 12, 14], [3, 5, 11, 12], 1)[0],
                                              abs=1e-3)
