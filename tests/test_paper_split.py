"""bench.paper_split: Table 1's figures, the seeds whose redrawn test half has them, the forecast."""
import numpy as np

from bench import paper_split
from pycount.data import prepare


def test_table1_figures_as_printed():
    assert paper_split.paper_figures("nuclei") == (310.22, 1, 1189)
    assert paper_split.paper_figures("bacterial") == (171.47, 74, 317)


def test_matching_seeds_find_the_draw_that_made_the_target():
    rng = np.random.default_rng(0)
    ids = [str(i) for i in range(1, 41)]
    counts = {i: int(c) for i, c in zip(ids, rng.integers(0, 500, len(ids)))}
    train, test = ids[:20], ids[20:]
    target = paper_split.figures(counts, prepare.redraw(train, test, 37)[1])
    found = paper_split.matching_seeds(counts, train, test, target, seeds=200, want=3)
    assert 37 in found and found == sorted(found)
    for s in found:                                   # every seed listed does match
        assert paper_split.figures(counts, prepare.redraw(train, test, s)[1]) == target
    assert paper_split.matching_seeds(counts, train, test, (-1.0, 0, 0), 50, 3) == []


def test_redraw_keeps_sizes_and_pool():
    train, test = [str(i) for i in range(30)], [str(i) for i in range(30, 50)]
    a, b = prepare.redraw(train, test, 5)
    assert len(a) == 30 and len(b) == 20 and sorted(a + b) == sorted(train + test)
    assert (a, b) == prepare.redraw(train, test, 5) != prepare.redraw(train, test, 6)


def test_forecast_averages_the_known_images_of_the_other_runs():
    errors = {"nuclei": {"1": 10.0, "2": 20.0}, "nuclei-split5": {"1": 30.0, "3": 6.0}}
    # image 1: (10 + 30) / 2, image 2: 20, image 4 unknown
    assert paper_split.forecast(errors, ["1", "2", "4"]) == (20.0, 2)
    # the half's own run left out: image 3 unknown then
    assert paper_split.forecast(errors, ["1", "3"], leave_out="nuclei-split5") == (10.0, 1)
    assert paper_split.forecast({}, ["1"]) == (None, 0)
    assert paper_split.measured(errors, "nuclei-split5") == 18.0
    assert paper_split.measured(errors, "nuclei-split6") is None
