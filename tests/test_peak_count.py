"""bench.peak_count: a density map counted by its local maxima (issue #26)."""
import numpy as np

from bench import peak_count


def test_local_maxima_and_the_threshold_chosen_on_marks():
    d = np.zeros((20, 20))
    d[5, 5], d[5, 7], d[15, 15] = 0.9, 0.5, 0.2     # 5,7 lies within 5,5's 5 px window
    d[10, 2] = 0.6
    assert peak_count.peaks(d, window=5).tolist() == [0.9, 0.6, 0.2]
    assert peak_count.peaks(d, window=1).tolist() == [0.9, 0.6, 0.5, 0.2]
    heights = [peak_count.peaks(d, 5), np.array([0.8, 0.3])]
    assert peak_count.peak_counts(heights, 0.25).tolist() == [2, 2]
    # marks 3 and 1: 0.2 counts 3 and 2 (MAE 0.5), 0.5 counts 2 and 1 (0.5), 0.7 1 and 1 (1)
    grid = np.array([0.7, 0.5, 0.2])
    assert peak_count.best_threshold(heights, np.array([3.0, 1.0]), grid) == 0.5
