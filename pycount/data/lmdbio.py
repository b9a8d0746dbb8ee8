"""Patches to Caffe LMDBs and back: Datum records, shuffled order, manifest, atomic writes.

Caffe's Data layer reads an LMDB in key order and never shuffles, so the writer does: record i gets
the key of position perm[i] in a seeded permutation, and key order is then a shuffled order.
A database is written into a hidden temporary folder next to its destination and renamed into place
only once complete (manifest included), so an interrupted or failed write never leaves a half LMDB
where a good one is expected, and the previous good one stays until the new one is finished.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import lmdb
import numpy as np

from pycount.util import atomic
from pycount.util.progress import Progress
from pycount.errors import LmdbError  # noqa: F401 (re-exported)

MANIFEST = "manifest.json"
_RECORD_OVERHEAD = 96          # bytes per record beyond the pixels: Datum fields, key, B-tree




def _caffe_pb2():
    from caffe.proto import caffe_pb2   # imported lazily: only the LMDB code needs protobuf
    return caffe_pb2


def encode_datum(rgb: np.ndarray, label: int, encoded: bool = False) -> bytes:
    """An H x W x 3 RGB uint8 patch and its integer count -> serialized Datum: raw BGR C x H x W
    bytes, or with `encoded` a lossless PNG (Caffe's Data layer decodes it with OpenCV)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 patch, got {rgb.dtype} {rgb.shape}")
    datum = _caffe_pb2().Datum()
    datum.channels, datum.height, datum.width = 3, rgb.shape[0], rgb.shape[1]
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if encoded:
        datum.data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()
        datum.encoded = True
    else:
        datum.data = bgr.transpose(2, 0, 1).tobytes()
    datum.label = int(label)
    return datum.SerializeToString()


def decode_datum(raw: bytes) -> tuple[np.ndarray, int]:
    """The inverse of encode_datum: (H x W x 3 RGB uint8, label)."""
    datum = _caffe_pb2().Datum()
    datum.ParseFromString(raw)
    if datum.encoded:
        bgr = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_COLOR)
        return bgr[:, :, ::-1].copy(), datum.label
    chw = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
    return chw.transpose(1, 2, 0)[:, :, ::-1].copy(), datum.label


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_float_datum(values: np.ndarray, label: int = 0) -> bytes:
    """An H x W float map (a density target) -> serialized 1 x H x W Datum of float_data.

    Written directly in the protobuf wire format, byte for byte what Datum.SerializeToString()
    gives (tests/test_density_model.py compares them): fields 1-3 and 5 as varints, then float_data
    (field 6, not packed in caffe.proto) as one 5-byte record per value. Filling the repeated
    field through protobuf costs ~5 ms a 64 x 64 map, most of a density `make prepare`."""
    values = np.asarray(values, np.float32)
    if values.ndim != 2:
        raise ValueError(f"expected an H x W map, got shape {values.shape}")
    if int(label) < 0:
        raise ValueError(f"label {label}: the fast encoder writes non-negative labels only")
    h, w = values.shape
    head = b"".join(bytes([tag]) + _varint(v) for tag, v in
                    ((0x08, 1), (0x10, h), (0x18, w), (0x28, int(label))))
    records = np.empty((h * w, 5), np.uint8)
    records[:, 0] = 0x35                       # field 6, wire type 5 (32-bit)
    records[:, 1:] = values.astype("<f4").reshape(-1, 1).view(np.uint8)
    return head + records.tobytes()


def decode_float_datum(raw: bytes) -> np.ndarray:
    """The inverse of encode_float_datum: the H x W float32 map."""
    datum = _caffe_pb2().Datum()
    datum.ParseFromString(raw)
    return np.asarray(datum.float_data, np.float32).reshape(datum.height, datum.width)


def record_bytes(sample_patches, encoded: bool) -> float:
    """Mean bytes per record: exact for raw patches, measured on a sample for PNG ones."""
    sample = list(sample_patches)
    if not sample:
        return _RECORD_OVERHEAD
    if not encoded:
        return sample[0].size + _RECORD_OVERHEAD
    return float(np.mean([len(encode_datum(p, 0, True)) for p in sample])) + _RECORD_OVERHEAD


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def write_manifest(path: Path, manifest: dict) -> None:
    """Replace a complete database's manifest (atomically: it is what says the data is whole)."""
    atomic.write_text(Path(path) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


class LmdbLocked(LmdbError):
    """A whole database that Caffe cannot open for want of write access to its lock file: not
    damaged (writing it again would fail the same way)."""


def check_readable(path: Path) -> None:
    """A prepared database whole on disk before Caffe opens it: Caffe aborts (a glog CHECK) on a
    missing or invalid data.mdb and dies of SIGBUS reading past the end of a truncated one, and
    its reader needs write access to the folder's lock file. LmdbError names the path and fix."""
    path = Path(path)
    again = "prepare it again (make prepare ... FORCE=1)"
    data = path / "data.mdb"
    if not data.is_file():
        raise LmdbError(f"{data} is missing: the prepared database is incomplete; {again}")
    try:
        with lmdb.open(str(path), readonly=True, lock=False, subdir=True) as env:
            info, stat = env.info(), env.stat()
    except lmdb.Error as e:
        raise LmdbError(f"{data} is not a readable database ({e}); {again}") from None
    need = (info["last_pgno"] + 1) * stat["psize"]
    size = data.stat().st_size
    if size < need:
        raise LmdbError(f"{data} is cut short ({size:,} of its {need:,} bytes); {again}")
    if not os.access(path, os.W_OK) or ((path / "lock.mdb").exists()
                                         and not os.access(path / "lock.mdb", os.W_OK)):
        raise LmdbLocked(f"{path}: Caffe's LMDB reader needs write access to its lock file "
                         f"(lock.mdb) there; make the folder writable for this user, or set "
                         f"PYCOUNT_DATA to a writable folder (prepare writes the databases "
                         f"there)")


def check_whole(path: Path) -> None:
    """check_readable, and data.mdb's bytes against the digest its manifest recorded when it was
    written: a database damaged inside (a bad disk, a copy gone wrong) keeps its size and page
    count, and Caffe then aborts on the first broken record (a glog CHECK on a Datum with no
    channels). Databases written before the digest was recorded get the size checks only."""
    check_readable(path)
    want = (read_manifest(path) or {}).get("data_sha256")
    if want and atomic.sha256_of(Path(path) / "data.mdb") != want:
        raise LmdbError(f"{Path(path) / 'data.mdb'} is damaged: its bytes differ from those "
                        f"written (sha256 recorded in {MANIFEST}); prepare it again "
                        f"(make prepare ... FORCE=1)")


def is_current(path: Path, fingerprint: str, whole: bool = True) -> bool:
    """True when `path` holds a database written with the same settings and sources and still
    whole on disk; a damaged one is reported (one line) and is not current. whole=False leaves
    out the data file's digest (check_whole), for a caller that has just checked it."""
    manifest = read_manifest(path)
    if not manifest or manifest.get("fingerprint") != fingerprint:
        return False
    if not whole:
        return True
    try:
        check_whole(path)
    except LmdbLocked:
        raise                       # whole, but unusable here: said, not written again
    except LmdbError as e:
        print(f"{e}: writing it again", flush=True)
        return False
    return True


def fingerprint(obj) -> str:
    """A stable hash of JSON-able settings (and source hashes) that identifies a database."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:20]


def write_lmdb(dest: Path, records: Iterable[tuple], n_max: int, patch: int,
               seed: int, manifest: dict, label: str = "writing LMDB", encoded: bool = False,
               bytes_per_record: float | None = None, targets: Path | None = None,
               keep: int = 0, before_swap=None) -> dict:
    """Write up to n_max (patch, count) records to `dest` in a seeded shuffled key order.

    With `keep` > 0 only the records whose shuffled key is below `keep` are stored: the first
    `keep` records that Caffe's Data layer (which reads in key order) would read from the whole
    database, when all n_max are written. A training that reads no more than `keep` patches sees
    exactly what it would see in the whole database, on a fraction of the disk.

    `patch` is the side of the stored patches; `bytes_per_record` (default: raw size) sizes the
    disk check and the LMDB map.

    With `targets`, records are (patch, count, H x W float map) and the maps go to a second LMDB
    there, under the same keys: Caffe's two Data layers then read them in lockstep. Both carry the
    same manifest (fingerprint included); the pair is replaced only once both are complete.

    `before_swap`: called once the new database is complete, before it replaces the old; what it
    raises leaves the old in place and the new one removed (prepare: a training that began to
    read `dest` while it was written).

    Returns the manifest written beside the data: the caller's entries plus the number of records,
    the count histogram and the per-channel mean (BGR) of the patches.
    """
    dest = Path(dest)
    made = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]   # innermost first
    dest.parent.mkdir(parents=True, exist_ok=True)
    per = bytes_per_record or 3 * patch * patch + _RECORD_OVERHEAD
    if targets is not None:
        per += 4 * patch * patch + _RECORD_OVERHEAD
    stored = min(n_max, keep) if keep > 0 else n_max
    # random keys leave B-tree pages about half full: the file grows to ~1.6x the payload
    need = int(stored * per * 1.6)
    free = shutil.disk_usage(dest.parent).free
    kept = f" (keeping the {stored} read first)" if stored < n_max else ""
    unit = "crops" if targets is not None else "patches"   # a density model's: crops + targets
    print(f"{label}: up to {n_max} {unit} of {patch}x{patch}{' (PNG)' if encoded else ''}"
          f"{kept}, about {need / 2**20:.0f} MiB -> {dest}", flush=True)
    if need * 1.1 > free:
        for d in made:              # the folders made for it go again: a refusal leaves nothing
            try:
                d.rmdir()
            except OSError:
                break
        raise LmdbError(f"{dest}: needs about {need / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB "
                        f"are free on that disk; free some space or set PYCOUNT_DATA to a folder "
                        f"on a larger disk")
    dests = [dest] + ([Path(targets)] if targets is not None else [])
    tmps = [d.parent / f".{d.name}.partial-{os.getpid()}" for d in dests]
    _remove(tmps)
    for d in dests:
        remove_stale_partials(d)
    fill = _Fill(np.random.default_rng(seed).permutation(n_max), encoded, stored)
    try:
        envs = [lmdb.open(str(tmp), map_size=int(need * 2) + (64 << 20), subdir=True,
                          meminit=False, map_async=True) for tmp in tmps]
        fill.run(envs, records, dest, label, with_targets=targets is not None)
        n, hist, channel_sum = fill.n, fill.hist, fill.channel_sum
        full = dict(manifest, records=n, stored_patch=patch, encoded=encoded, shuffle_seed=seed,
                    **({"patches_cut": fill.seen} if stored < n_max else {}),
                    count_histogram={str(k): hist[k] for k in sorted(hist)},
                    mean_bgr=[round(float(v), 3) for v in channel_sum / max(n, 1)])
        for i, tmp in enumerate(tmps):
            own = dict(full, content="density targets") if i else full
            own["data_sha256"] = atomic.sha256_of(tmp / "data.mdb")      # check_whole's reference
            (tmp / MANIFEST).write_text(json.dumps(own, indent=1, sort_keys=True))
    except lmdb.MapFullError as e:
        _remove(tmps)
        raise LmdbError(f"{dest}: LMDB map full after {fill.n} records ({e}); this is a size "
                        f"estimate bug, please report it") from e
    except (OSError, lmdb.Error) as e:     # lmdb.Error is no OSError (a full disk, ulimit -f)
        _remove(tmps)
        raise LmdbError(f"{dest}: writing failed after {fill.n} records ({e}); nothing was replaced. "
                        f"If the disk is full, free space or set PYCOUNT_DATA to a folder "
                        f"on a larger disk") from e
    except BaseException:
        _remove(tmps)
        raise
    if before_swap is not None:         # (a training that began to read `dest` meanwhile)
        try:
            before_swap()
        except BaseException:
            _remove(tmps)
            raise
    # the old databases go only once the new ones are complete; the targets first, so that a
    # crash in between leaves a pair whose fingerprints differ (is_current then says so)
    for tmp, d in reversed(list(zip(tmps, dests))):
        atomic.replace_dir(tmp, d)      # the old database goes only once the new one is in place
    return full


class _Fill:
    """Records into open LMDB environments under the shuffled keys `perm` (one transaction per
    COMMIT_EVERY records), counting what went in: n, the count histogram, the BGR channel sums.
    Records whose key is `keep` or above are passed over (seen counts every record)."""
    COMMIT_EVERY = 2000

    def __init__(self, perm: np.ndarray, encoded: bool, keep: int | None = None):
        self.perm, self.encoded = perm, encoded
        self.keep = len(perm) if keep is None else keep
        self.n, self.seen, self.hist, self.channel_sum = 0, 0, {}, np.zeros(3)

    def run(self, envs, records, dest: Path, label: str, with_targets: bool) -> None:
        n_max = len(self.perm)
        txns = [env.begin(write=True) for env in envs]
        # the first record before the bar's clock starts: what its generator sets up first
        # (reading and turning the images) made a first line of ~0.4 patches/s, eta 25 days
        records = iter(records)
        first = next(records, None)
        with Progress(n_max, label, "crops" if with_targets else "patches") as bar:
            for rec in itertools.chain([] if first is None else [first], records):
                rgb, count = rec[0], rec[1]
                if self.seen >= n_max:
                    raise LmdbError(f"{dest}: more records than the {n_max} announced (a bug)")
                index = self.perm[self.seen]
                self.seen += 1
                if index >= self.keep:
                    bar.update(1)
                    continue
                key = b"%08d" % index
                txns[0].put(key, encode_datum(rgb, count, self.encoded))
                if with_targets:
                    txns[1].put(key, encode_float_datum(rec[2], count))
                self.hist[int(count)] = self.hist.get(int(count), 0) + 1
                self.channel_sum += rgb.reshape(-1, 3).mean(axis=0)[::-1]
                self.n += 1
                if self.n % self.COMMIT_EVERY == 0:
                    for txn in txns:
                        txn.commit()
                    txns = [env.begin(write=True) for env in envs]
                bar.update(1)
        for txn, env in zip(txns, envs):
            txn.commit()
            env.sync()
            env.close()


def remove_stale_partials(dest: Path) -> list[Path]:
    """Remove the half-written `.NAME.partial-PID` folders of `dest` left by killed writers
    (a live writer's folder stays); returns what was removed."""
    stale = []
    for tmp in Path(dest).parent.glob(f".{Path(dest).name}.partial-*"):
        if atomic.writer_gone(tmp.name.rsplit("-", 1)[1]):
            stale.append(tmp)
    _remove(stale)
    return stale


def _remove(folders) -> None:
    for f in folders:
        shutil.rmtree(f, ignore_errors=True)


def read_lmdb(path: Path, limit: int | None = None, decode=decode_datum) -> Iterator[tuple]:
    """Yield (key, RGB patch, label) in key order, i.e. the order Caffe's Data layer reads; with
    decode=decode_float_datum (a targets LMDB), (key, float map)."""
    path = Path(path)
    if not (path / "data.mdb").exists():
        raise LmdbError(f"{path}: no LMDB there; run `make prepare` first")
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            for i, (key, raw) in enumerate(txn.cursor()):
                if limit is not None and i >= limit:
                    break
                out = decode(raw)
                yield (key, *out) if isinstance(out, tuple) else (key, out)
    finally:
        env.close()
