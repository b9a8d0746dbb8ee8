"""LMDB records: Datum round trip, shuffled order, atomic replacement, disk-space check."""
from collections import namedtuple

import numpy as np
import pytest

pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from pycount.data import lmdbio  # noqa: E402


def records(n, patch=6, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 256, (patch, patch, 3), dtype=np.uint8), i) for i in range(n)]


def test_datum_round_trip_keeps_pixels_label_and_bgr_layout():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200                      # pure red in RGB
    raw = lmdbio.encode_datum(rgb, 7)
    from caffe.proto import caffe_pb2
    d = caffe_pb2.Datum()
    d.ParseFromString(raw)
    assert (d.channels, d.height, d.width, d.label) == (3, 4, 5, 7)
    chw = np.frombuffer(d.data, np.uint8).reshape(3, 4, 5)
    assert chw[2].min() == 200 and chw[:2].max() == 0      # red is Caffe's channel 2 (BGR)
    back, label = lmdbio.decode_datum(raw)
    assert label == 7 and np.array_equal(back, rgb)


def test_write_read_round_trip_in_shuffled_order(tmp_path):
    recs = records(200)
    man = lmdbio.write_lmdb(tmp_path / "db", iter(recs), n_max=200, patch=6, seed=3,
                            manifest={"fingerprint": "x"})
    assert man["records"] == 200 and sum(man["count_histogram"].values()) == 200
    read = list(lmdbio.read_lmdb(tmp_path / "db"))
    labels = [label for _, _, label in read]
    assert sorted(labels) == list(range(200))                 # every record, once
    assert labels != list(range(200))                          # key order is not write order
    by_label = {label: rgb for _, rgb, label in read}
    assert all(np.array_equal(by_label[i], rgb) for rgb, i in recs)
    # seeded: the same seed gives the same order
    lmdbio.write_lmdb(tmp_path / "db2", iter(recs), n_max=200, patch=6, seed=3, manifest={})
    assert [lab for _, _, lab in lmdbio.read_lmdb(tmp_path / "db2")] == labels


def test_a_kept_database_is_the_first_records_the_whole_one_is_read_in(tmp_path):
    recs = records(200)
    lmdbio.write_lmdb(tmp_path / "whole", iter(recs), n_max=200, patch=6, seed=3, manifest={})
    man = lmdbio.write_lmdb(tmp_path / "kept", iter(recs), n_max=200, patch=6, seed=3,
                            manifest={}, keep=50)
    whole = list(lmdbio.read_lmdb(tmp_path / "whole"))
    kept = list(lmdbio.read_lmdb(tmp_path / "kept"))
    assert man["records"] == 50 and man["patches_cut"] == 200
    assert sum(man["count_histogram"].values()) == 50
    assert [(k, lab) for k, _, lab in kept] == [(k, lab) for k, _, lab in whole[:50]]
    assert all(np.array_equal(a, b) for (_, a, _), (_, b, _) in zip(kept, whole))
    # keep >= n_max is the whole database, and says nothing of a cut
    man = lmdbio.write_lmdb(tmp_path / "all", iter(recs), n_max=200, patch=6, seed=3,
                            manifest={}, keep=500)
    assert man["records"] == 200 and "patches_cut" not in man


def test_the_disk_check_counts_only_the_kept_records(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    per = 3 * 6 * 6 + lmdbio._RECORD_OVERHEAD
    free = int(1.6 * 1.1 * per * 60)            # room for 60 records, not for 200
    monkeypatch.setattr(lmdbio.shutil, "disk_usage", lambda p: usage(10**9, 10**9, free))
    with pytest.raises(lmdbio.LmdbError, match="PYCOUNT_DATA"):
        lmdbio.write_lmdb(tmp_path / "db", iter(records(200)), n_max=200, patch=6, seed=0,
                          manifest={})
    man = lmdbio.write_lmdb(tmp_path / "db", iter(records(200)), n_max=200, patch=6, seed=0,
                            manifest={}, keep=50)
    assert man["records"] == 50


def test_failed_write_keeps_the_previous_database(tmp_path):
    dest = tmp_path / "db"
    lmdbio.write_lmdb(dest, iter(records(10)), n_max=10, patch=6, seed=0,
                      manifest={"fingerprint": "good"})

    def broken():
        yield from records(5)
        raise RuntimeError("reader crashed")

    with pytest.raises(RuntimeError):
        lmdbio.write_lmdb(dest, broken(), n_max=10, patch=6, seed=0, manifest={"fingerprint": "new"})
    assert lmdbio.is_current(dest, "good")
    assert len(list(lmdbio.read_lmdb(dest))) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["db"]      # no partial folder left behind


def test_refuses_when_the_disk_is_too_small(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(lmdbio.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    with pytest.raises(lmdbio.LmdbError, match="PYCOUNT_DATA") as e:
        lmdbio.write_lmdb(tmp_path / "db", iter(records(10)), n_max=10, patch=6, seed=0,
                          manifest={})
    assert str(tmp_path / "db") in str(e.value)
    assert not (tmp_path / "db").exists()
    # the folders made for it go too (an empty data/lmdb/<tag>/ stayed); those before it stay
    with pytest.raises(lmdbio.LmdbError, match="PYCOUNT_DATA"):
        lmdbio.write_lmdb(tmp_path / "tag" / "density" / "db", iter(records(10)), n_max=10,
                          patch=6, seed=0, manifest={})
    assert sorted(tmp_path.iterdir()) == []


def test_missing_database_names_the_fix(tmp_path):
    with pytest.raises(lmdbio.LmdbError, match="make prepare"):
        list(lmdbio.read_lmdb(tmp_path / "nothing"))


def test_png_encoded_records_round_trip_and_are_smaller(tmp_path):
    flat = [(np.full((40, 40, 3), 200, np.uint8), 3)] * 20      # compressible, like backgrounds
    lmdbio.write_lmdb(tmp_path / "png", iter(flat), n_max=20, patch=40, seed=0, manifest={},
                      encoded=True)
    lmdbio.write_lmdb(tmp_path / "raw", iter(flat), n_max=20, patch=40, seed=0, manifest={})
    read = list(lmdbio.read_lmdb(tmp_path / "png"))
    assert all(np.array_equal(rgb, flat[0][0]) and label == 3 for _, rgb, label in read)
    assert lmdbio.record_bytes([flat[0][0]], True) < lmdbio.record_bytes([flat[0][0]], False) / 10


def test_the_bar_starts_with_the_first_record(tmp_path, monkeypatch, capsys):
    """A generator that spends 5 s before its first record (reading images), then 0.01 s per
    record: the first progress line's rate is the writing's, not one record over those 5 s."""
    now = [0.0]
    monkeypatch.setattr("pycount.util.progress.time.monotonic", lambda: now[0])

    def slow_start():
        now[0] += 5.0
        for rec in records(50):
            now[0] += 0.05
            yield rec
    lmdbio.write_lmdb(tmp_path / "db", slow_start(), n_max=50, patch=6, seed=3, manifest={},
                      label="cut")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cut:")]
    rates = [float(line.split(" patches/s")[0].rsplit(" ", 1)[1]) for line in lines
             if "- patches/s" not in line]              # the lines before a second is timed
    assert rates and min(rates) >= 10, lines         # 20 patches/s, not 0.2
    assert 18 <= rates[-1] <= 22, lines               # the writing's own rate by the end
