"""The progress bar's rate and eta count only the work of this session (a resumed training)."""
import io
import re

from pycount.util.progress import Progress


def _last_line(stream):
    return stream.getvalue().strip().splitlines()[-1]


def test_resumed_bar_rate_and_eta_cover_only_this_session(monkeypatch):
    from pycount.util import progress
    clock = [200.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with Progress(1000, "training", "iter", stream=out, done=500) as bar:
        clock[0] += 10.0                      # 10 s since the bar began
        bar.update(100, loss=0.5)
    line = _last_line(out)
    assert line.startswith("training: 600/1000 iter ( 60%)")
    rate = float(re.search(r"([\d.]+) iter/s", line).group(1))
    eta = float(re.search(r"eta (\d+)s", line).group(1))
    assert 9.0 < rate <= 10.0                 # 100 iterations in ~10 s, not 600
    assert 40 <= eta < 45                     # 400 left at ~10 iter/s
    assert "loss=0.5" in line


def test_fresh_bar_prints_each_tenth_once_off_a_terminal():
    out = io.StringIO()
    with Progress(20, "writing", "patches", stream=out) as bar:
        for _ in range(20):
            bar.update(1)
    lines = out.getvalue().strip().splitlines()
    fracs = [int(re.search(r"\(\s*(\d+)%\)", ln).group(1)) for ln in lines]
    # the first update, then one line as each tenth is reached; the final draw repeats none
    assert fracs == [5] + list(range(10, 101, 10))


def test_a_slow_bar_also_prints_by_the_clock_off_a_terminal(monkeypatch):
    """A tenth of a 20,000-iteration CPU training is over an hour: a log line at least every
    PROGRESS_LOG_SECONDS between the tenths."""
    from pycount import config
    from pycount.util import progress
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with Progress(1000, "training", "iter", stream=out) as bar:
        bar.update(1)                                     # the first line
        for _ in range(20):                               # 20 iterations, each a minute
            clock[0] += 60.0
            bar.update(1)
    counts = [int(re.search(r": (\d+)/1000", ln).group(1)) for ln in out.getvalue().splitlines()]
    every = int(config.PROGRESS_LOG_SECONDS // 60)
    assert 1 <= every < 20 and counts == list(range(1, 22, every))


def test_no_rate_before_a_second_is_timed(monkeypatch):
    """An update a few milliseconds after the start shows no rate or eta (it read 118,441
    images/s); from PROGRESS_RATE_AFTER_SECONDS on, the measured ones."""
    from pycount import config
    from pycount.util import progress
    clock = [50.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with Progress(10, "drawing", "images", stream=out) as bar:
        clock[0] += 0.002
        bar.update(1)
        clock[0] += config.PROGRESS_RATE_AFTER_SECONDS
        bar.update(1)
    first, second = out.getvalue().strip().splitlines()   # the final draw repeats no tenth
    assert "- images/s" in first and "eta -" in first and "/s, " in first
    assert re.search(r" 2\.0 images/s", second) and re.search(r"eta 4s", second)


def test_a_bar_done_within_a_second_ends_on_its_rate(monkeypatch):
    """Work finished before a second is timed still says how fast it went on its last line."""
    from pycount.util import progress
    clock = [7.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with Progress(4, "writing", "patches", stream=out) as bar:
        for _ in range(4):
            clock[0] += 0.05
            bar.update(1)
    lines = out.getvalue().strip().splitlines()
    assert "- patches/s" in lines[0]
    assert lines[-1].startswith("writing: 4/4") and " 20.0 patches/s" in lines[-1]


def test_the_parts_of_one_item_report_its_share_in_order():
    """Test-time augmentation runs the net once per transform: each run's steps are that part's
    share of the image (progress.part), so the image's share rises once from 0 to 1."""
    from pycount.util import progress
    seen = []
    with progress.within(seen.append):
        for i in range(4):
            with progress.part(i, 4):
                progress.step(1, 2)
                progress.step(2, 2)
    assert seen == [0, 0.125, 0.25, 0.25, 0.25, 0.375, 0.5, 0.5, 0.5, 0.625, 0.75, 0.75, 0.75,
                    0.875, 1.0, 1.0]
    progress.step(1, 2)                       # no reporter: nothing to call
    assert len(seen) == 16


def test_a_span_reports_its_share_and_steps_outside_any_bar_do_nothing():
    """A patch model's windows take the first 90 % of an image's progress and the tiles its
    tiling estimate still lacks the rest: the share rises once, never back."""
    from pycount.util import progress
    seen = []
    with progress.within(seen.append):
        with progress.span(0.0, 0.9):
            progress.step(1, 2)
            progress.step(2, 2)
        with progress.span(0.9, 1.0):
            progress.step(1, 1)
    assert seen == [0.0, 0.45, 0.9, 0.9, 0.9, 1.0, 1.0]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_bar_redraws_at_most_every_tenth_of_a_second_and_ends_its_line(
        monkeypatch):
    """Updates within 0.1 s of the last drawing are not drawn; the last state always is, on a
    line of its own; the bar is 24 wide, full (never longer) once the work is done."""
    from pycount.util import progress
    clock = [10.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = _Terminal()
    with Progress(10, "counting", "images", stream=out) as bar:
        clock[0] += 0.2
        bar.update(1)                                     # drawn
        clock[0] += 0.04
        bar.update(1)                                     # too soon: not drawn
        clock[0] += 0.04
        bar.update(1)                                     # still within 0.1 s: not drawn
        clock[0] += 0.04
        bar.update(9)                                     # drawn, past the total
    draws = out.getvalue().split("\r")[1:]
    assert len(draws) == 3                                # and the last state once more
    assert draws[0].startswith("[" + "#" * 2 + "." * 22 + "] counting: 1/10 images ( 10%)")
    assert draws[1].startswith("[" + "#" * 24 + "] counting: 12/10 images (120%)")
    assert draws[1].endswith("\033[K")
    assert draws[2].startswith("[" + "#" * 24 + "] counting: 12/10")
    assert draws[2].endswith("\033[K\n") and out.getvalue().count("\n") == 1


def test_the_last_line_shows_the_rate_even_within_the_first_second(monkeypatch):
    """A bar left before its total (a count stopped) within a second still ends on its rate."""
    from pycount.util import progress
    clock = [3.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = _Terminal()
    with Progress(10, "counting", "images", stream=out) as bar:
        clock[0] += 0.5
        bar.update(3)
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("[" + "#" * 7 + "." * 17 + "] counting: 3/10 images ( 30%) 6.0 "
                           "images/s, 0s elapsed, eta 1s")


def test_the_rate_is_shown_from_exactly_progress_rate_after_seconds(monkeypatch):
    from pycount import config
    from pycount.util import progress
    clock = [5.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with Progress(10, "drawing", "images", stream=out) as bar:
        clock[0] += config.PROGRESS_RATE_AFTER_SECONDS
        bar.update(1, loss=0.123456789, name="a")
    assert _last_line(out) == (f"drawing: 1/10 images ( 10%) "
                               f"{1 / config.PROGRESS_RATE_AFTER_SECONDS:.1f} images/s, "
                               f"{config.PROGRESS_RATE_AFTER_SECONDS:.0f}s elapsed, eta "
                               f"{9 * config.PROGRESS_RATE_AFTER_SECONDS:.0f}s  "
                               f"loss=0.1235  name=a")


def test_a_resumed_bar_left_before_any_update_has_no_eta(monkeypatch):
    """Nothing done this session: no rate to divide by, the eta is 0, not an error."""
    from pycount.util import progress
    clock = [1.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with Progress(10, "training", "iter", stream=out, done=5):
        clock[0] += 2.0
    assert _last_line(out) == "training: 5/10 iter ( 50%) 0.0 iter/s, 2s elapsed, eta 0s"


def test_negative_totals_and_done_count_as_nothing():
    out = io.StringIO()
    with Progress(-4, "writing", "patches", stream=out):
        pass
    assert _last_line(out).startswith("writing: 0/0 patches (100%)")
    out = io.StringIO()
    with Progress(10, "writing", "patches", stream=out, done=-3) as bar:
        bar.update(1)
    assert _last_line(out).startswith("writing: 1/10 patches ( 10%)")


def test_work_past_the_total_prints_no_more_lines_off_a_terminal():
    out = io.StringIO()
    with Progress(10, "writing", "patches", stream=out) as bar:
        for _ in range(13):
            bar.update(1)
    counts = [int(re.search(r": (\d+)/10", ln).group(1)) for ln in out.getvalue().splitlines()]
    assert counts == list(range(1, 11))


def test_an_items_share_is_shown_while_it_is_worked_on_and_then_taken_away():
    from pycount.util import progress
    out = io.StringIO()
    with Progress(2, "counting", "images", stream=out) as bar:
        with bar.item("big.png"):
            progress.step(2, 5)
            assert bar.info == "big.png: 40%"
        bar.update(1)
    assert "big.png" not in _last_line(out)
    assert "big.png: 40%" in out.getvalue()


def test_a_step_past_its_total_reports_the_whole_and_one_of_no_total_nothing():
    from pycount.util import progress
    seen = []
    with progress.within(seen.append):
        progress.step(0, 0)
        progress.step(3, 2)
    assert seen == [1.0]
