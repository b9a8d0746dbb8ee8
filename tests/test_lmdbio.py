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


def test_png_records_hold_bgr_as_caffe_decodes_them():
    # Caffe decodes a PNG Datum with OpenCV, which gives BGR: the PNG must hold BGR pixels,
    # and reading it back in Python gives the RGB patch again
    import cv2
    from caffe.proto import caffe_pb2
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 60, 10
    raw = lmdbio.encode_datum(rgb, 4, encoded=True)
    d = caffe_pb2.Datum()
    d.ParseFromString(raw)
    bgr = cv2.imdecode(np.frombuffer(d.data, np.uint8), cv2.IMREAD_COLOR)
    assert d.encoded and d.label == 4
    assert bgr[..., 0].min() == 10 and bgr[..., 2].max() == 200
    back, label = lmdbio.decode_datum(raw)
    assert label == 4 and np.array_equal(back, rgb)


def test_patches_that_are_not_rgb_uint8_or_negative_target_labels_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="H x W x 3"):
        lmdbio.encode_datum(np.zeros((4, 4, 4), np.uint8), 1)       # RGBA
    with pytest.raises(ValueError, match="H x W x 3"):
        lmdbio.encode_datum(np.zeros((4, 4, 3), np.float32), 1)
    # a negative label would loop for ever in the varint writer: fail fast if it gets there
    varint = lmdbio._varint
    monkeypatch.setattr(lmdbio, "_varint", lambda n: varint(n) if n >= 0 else 1 / 0)
    with pytest.raises(ValueError, match="non-negative"):
        lmdbio.encode_float_datum(np.zeros((2, 2)), -1)


def test_manifest_holds_the_histogram_and_bgr_mean_of_what_was_stored(tmp_path):
    red = np.zeros((6, 6, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((6, 6, 3), np.uint8)
    blue[..., 2] = 100
    recs = [(red, 1), (red, 1), (red, 1), (blue, 2)]
    man = lmdbio.write_lmdb(tmp_path / "db", iter(recs), n_max=4, patch=6, seed=0, manifest={})
    assert man["count_histogram"] == {"1": 3, "2": 1}
    assert man["mean_bgr"] == [25.0, 0.0, 150.0]              # B, G, R over the 4 patches
    # kept: the mean is over the records stored, not over all those cut
    same = [(np.full((6, 6, 3), (10, 20, 30), np.uint8), 0)] * 200
    man = lmdbio.write_lmdb(tmp_path / "kept", iter(same), n_max=200, patch=6, seed=0,
                            manifest={}, keep=50)
    assert man["mean_bgr"] == [30.0, 20.0, 10.0] and man["count_histogram"] == {"0": 50}
    # fewer records than announced: patches_cut says how many there were
    man = lmdbio.write_lmdb(tmp_path / "short", iter(same[:150]), n_max=200, patch=6, seed=0,
                            manifest={}, keep=50)
    assert man["patches_cut"] == 150


def test_more_records_than_announced_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(lmdbio.LmdbError, match="more records than the 10 announced"):
        lmdbio.write_lmdb(tmp_path / "db", iter(records(11)), n_max=10, patch=6, seed=0,
                          manifest={})
    assert list(tmp_path.iterdir()) == []


def test_read_limit_gives_that_many_records(tmp_path):
    lmdbio.write_lmdb(tmp_path / "db", iter(records(10)), n_max=10, patch=6, seed=0, manifest={})
    assert len(list(lmdbio.read_lmdb(tmp_path / "db", limit=3))) == 3
    assert len(list(lmdbio.read_lmdb(tmp_path / "db", limit=0))) == 0


def test_damage_to_a_database_is_named(tmp_path):
    dest = tmp_path / "db"
    lmdbio.write_lmdb(dest, iter(records(300, patch=16)), n_max=300, patch=16, seed=0,
                      manifest={"fingerprint": "f"})
    data = dest / "data.mdb"
    raw = data.read_bytes()
    lmdbio.check_whole(dest)
    assert lmdbio.is_current(dest, "f") and not lmdbio.is_current(dest, "other")
    # one page short (LMDB's pages are 4 KiB here) is cut short
    data.write_bytes(raw[:-4096])
    with pytest.raises(lmdbio.LmdbError, match="is cut short"):
        lmdbio.check_readable(dest)
    # the same size, bytes overwritten inside
    b = bytearray(raw)
    b[len(b) // 2:len(b) // 2 + 100] = b"\x00" * 100
    data.write_bytes(bytes(b))
    lmdbio.check_readable(dest)                 # sizes agree ...
    with pytest.raises(lmdbio.LmdbError, match="is damaged"):
        lmdbio.check_whole(dest)                # ... the digest does not
    assert lmdbio.is_current(dest, "f", whole=False)     # a caller that checked it already
    assert not lmdbio.is_current(dest, "f")
    data.write_bytes(raw[:100])
    with pytest.raises(lmdbio.LmdbError, match="is not a readable database"):
        lmdbio.check_readable(dest)
    data.unlink()
    with pytest.raises(lmdbio.LmdbError, match="data.mdb is missing"):
        lmdbio.check_readable(dest)


def test_a_locked_database_is_reported_not_written_again(tmp_path, monkeypatch):
    lmdbio.write_lmdb(tmp_path / "db", iter(records(10)), n_max=10, patch=6, seed=0,
                      manifest={"fingerprint": "f"})

    def locked(path):
        raise lmdbio.LmdbLocked("no write access to lock.mdb")
    monkeypatch.setattr(lmdbio, "check_whole", locked)
    with pytest.raises(lmdbio.LmdbLocked):
        lmdbio.is_current(tmp_path / "db", "f")


def test_fingerprint_does_not_depend_on_key_order():
    import hashlib
    want = hashlib.sha256(b'{"a": 1, "b": [2, 3]}').hexdigest()[:20]
    assert lmdbio.fingerprint({"b": [2, 3], "a": 1}) == lmdbio.fingerprint({"a": 1, "b": [2, 3]})
    assert lmdbio.fingerprint({"b": [2, 3], "a": 1}) == want


def test_a_leftover_partial_folder_under_this_process_id_is_not_written_into(tmp_path):
    # a container's writer often has the same pid as one killed before it: its half-written
    # folder must not lend records to the new database
    import os
    old = tmp_path / f".db.partial-{os.getpid()}"
    lmdbio.write_lmdb(tmp_path / "old", iter(records(20)), n_max=20, patch=6, seed=0,
                      manifest={})
    (tmp_path / "old").rename(old)
    lmdbio.write_lmdb(tmp_path / "db", iter(records(5)), n_max=5, patch=6, seed=0, manifest={})
    assert len(list(lmdbio.read_lmdb(tmp_path / "db"))) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]


def test_a_live_writers_partial_folder_stays(tmp_path, dead_pid):
    import os
    live = tmp_path / f".db.partial-{os.getpid()}"
    dead = tmp_path / f".db.partial-{dead_pid}"
    live.mkdir()
    dead.mkdir()
    assert lmdbio.remove_stale_partials(tmp_path / "db") == [dead]
    assert live.exists() and not dead.exists()


def test_density_targets_are_sized_and_digested_as_their_own_database(tmp_path, monkeypatch):
    recs = [(rgb, c, np.full((6, 6), c / 36, np.float32)) for rgb, c in records(10)]
    man = lmdbio.write_lmdb(tmp_path / "img", iter(recs), n_max=10, patch=6, seed=0,
                            manifest={"fingerprint": "f"}, targets=tmp_path / "tgt")
    lmdbio.check_whole(tmp_path / "img")
    lmdbio.check_whole(tmp_path / "tgt")
    assert lmdbio.read_manifest(tmp_path / "tgt")["content"] == "density targets"
    assert man["records"] == 10
    # the disk check counts both: 10 x (3*36 + 96 + 4*36 + 96) x 1.6 = 7104 bytes, with 10% spare
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(lmdbio.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 7500))
    with pytest.raises(lmdbio.LmdbError, match="PYCOUNT_DATA"):
        lmdbio.write_lmdb(tmp_path / "img2", iter(recs), n_max=10, patch=6, seed=0,
                          manifest={}, targets=tmp_path / "tgt2")
    monkeypatch.setattr(lmdbio.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 7900))
    lmdbio.write_lmdb(tmp_path / "img2", iter(recs), n_max=10, patch=6, seed=0,
                      manifest={}, targets=tmp_path / "tgt2")


def test_a_refusal_before_the_swap_keeps_the_old_database_and_no_partial(tmp_path):
    dest = tmp_path / "db"
    lmdbio.write_lmdb(dest, iter(records(10)), n_max=10, patch=6, seed=0,
                      manifest={"fingerprint": "good"})

    def being_read():
        raise RuntimeError("a training is reading it")
    with pytest.raises(RuntimeError, match="reading it"):
        lmdbio.write_lmdb(dest, iter(records(4)), n_max=4, patch=6, seed=0,
                          manifest={"fingerprint": "new"}, before_swap=being_read)
    assert lmdbio.is_current(dest, "good") and len(list(lmdbio.read_lmdb(dest))) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["db"]
