"""ImageNet weights of the pretrained nets: find and verify the caffemodel, copy it into a net.

The files cannot be downloaded by pycount (see weights/README.md); users put them in weights/.
A file is checked against the size and sha256 of the release before use; since hashing 240 MB
takes seconds, a successful check leaves a stamp `<file>.sha256-ok` (size, mtime, hash) beside
it, and later runs trust the file while its size and mtime are unchanged.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pycount import config
from pycount.errors import WeightsError  # noqa: F401 (re-exported)

WEIGHTS_DIR = config.weights_dir()

# A weights folder may hold stand-ins for the released files: caffemodels of the same nets with
# random parameters, listed by size and sha256 in this file beside them. bench/audit_dry_run.py
# builds them to run `make audit-gpu` end to end where He et al.'s files are not to be had; a run
# trained from one says so in its train.json, and the audit shows it as a dry run, never as a
# result.
STAND_IN_LIST = "stand-in.json"

# The released files of He et al. (deep-residual-networks): name -> (bytes, sha256).
# Module-level so that tests can substitute files of their own.
RELEASED: dict[str, tuple[int, str]] = {
    "ResNet-50-model.caffemodel":
        (102_462_397, "44ee2b08816cede2b7aaa047888df07dcab52f73399aa1c8bef05a17bfdd4888"),
    "ResNet-101-model.caffemodel":
        (178_662_602, "2847d93346d7928ec1f257f49f60ea53e9075c15265c494469610e67ffb7f2e2"),
    "ResNet-152-model.caffemodel":
        (241_444_171, "6253c4c4132c0b25c112b166629aa57dcaeec044a4c68ac9f003b6c801329d55"),
}

# The stand-ins this process has named already: the note comes once per file, not once for every
# cell the audit or a sweep looks at.
_NOTED: set[Path] = set()


def _stand_ins() -> dict[str, tuple[int, str]]:
    """The stand-ins listed in the weights folder (name -> (bytes, sha256)); {} when none."""
    listed = WEIGHTS_DIR / STAND_IN_LIST
    if not listed.is_file():
        return {}
    try:
        return {name: (int(size), str(sha)) for name, (size, sha) in
                json.loads(listed.read_text()).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        raise WeightsError(f"{listed} is damaged: delete it (it lists the stand-in weights of a "
                           f"dry run) or build the stand-ins again") from None


def is_stand_in(path: Path) -> bool:
    """Whether the weights at `path` (as resolve returned it) are a dry run's stand-in."""
    return Path(path).parent == WEIGHTS_DIR and Path(path).name in _stand_ins()


def _sha256(path: Path) -> str:
    from pycount.util.atomic import sha256_of
    return sha256_of(path)


def resolve(model: config.ModelConfig) -> Path:
    """The verified caffemodel of `model` under WEIGHTS_DIR; WeightsError says what is wrong."""
    if not model.weights:
        raise WeightsError(f"model {model.name} starts from no pretrained weights")
    stand_ins = _stand_ins()
    if model.weights not in RELEASED and model.weights not in stand_ins:
        raise WeightsError(f"{model.weights}: no recorded size and sha256; known files: "
                           f"{', '.join(sorted(RELEASED))}")
    size, sha = stand_ins.get(model.weights) or RELEASED[model.weights]
    path = WEIGHTS_DIR / model.weights
    if model.weights in stand_ins and path not in _NOTED:
        _NOTED.add(path)
        print(f"note: {path} is a stand-in listed in {WEIGHTS_DIR / STAND_IN_LIST} (random "
              f"parameters, for a dry run): what it trains is no result", file=sys.stderr)
    if not path.is_file():
        raise WeightsError(
            f"{model.weights} not found: put it in {WEIGHTS_DIR}/ (where to get it: "
            f"weights/README.md)", f", or train {model.name} from random weights with SCRATCH=1")
    st = path.stat()
    stamp = path.with_name(path.name + ".sha256-ok")
    mark = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    try:
        if json.loads(stamp.read_text()) == mark:
            return path
    except (OSError, ValueError):
        pass
    actual = _sha256(path)
    if st.st_size != size or actual != sha:
        raise WeightsError(
            f"{path}: not the released {model.weights} ({st.st_size:,} bytes, sha256 {actual}; "
            f"expected {size:,} bytes, sha256 {sha}); download it again (weights/README.md)")
    try:
        stamp.write_text(json.dumps(mark))
    except OSError:                      # a read-only weights folder: check again next time
        pass
    return path


def _varint(buf, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf):
    """(field number, value) of one serialized protobuf message: an int for a varint field, the
    bytes for a length-delimited one; fixed-width fields are skipped."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield key >> 3, value
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise WeightsError("a field runs past the end of the file (cut short)")
            yield key >> 3, buf[i:i + n]
            i += n
        else:
            raise WeightsError(f"unsupported protobuf wire type {wire}")


def _messages(buf):
    """(field number, bytes) of the length-delimited fields of one serialized protobuf message;
    the other fields are skipped."""
    return ((field, value) for field, value in _fields(buf) if not isinstance(value, int))


def _blob_shape(blob) -> tuple[tuple[int, ...], bool]:
    """(shape, legacy) of a BlobProto: its BlobShape (field 7, dims packed or not), or the legacy
    num / channels / height / width (fields 1-4) of files older than N-d blobs."""
    legacy, dims = [1, 1, 1, 1], None
    for field, value in _fields(blob):
        if field == 7:
            dims = []
            for f, v in _fields(value):
                if f == 1 and isinstance(v, int):
                    dims.append(v)
                elif f == 1:                             # packed
                    j = 0
                    while j < len(v):
                        d, j = _varint(v, j)
                        dims.append(d)
        elif field in (1, 2, 3, 4) and isinstance(value, int):
            legacy[field - 1] = value
    return (tuple(dims), False) if dims is not None else (tuple(legacy), True)


def blob_shapes(path: Path) -> dict[str, list[tuple[tuple[int, ...], bool]]]:
    """Layer name -> the (shape, legacy) of each of its blobs, for the layers of a caffemodel
    that hold parameters; the blobs' numbers are not read."""
    out = {}
    for field, layer in _messages(memoryview(Path(path).read_bytes())):
        if field == 100:
            name, blobs = None, []
            for f, v in _messages(layer):
                if f == 1:
                    name = bytes(v).decode()
                elif f == 7:
                    blobs.append(_blob_shape(v))
            if blobs:
                out[name] = blobs
    return out


def check_fits(net, weights_path: Path) -> dict[str, list[tuple[tuple[int, ...], bool]]]:
    """WeightsError unless `weights_path` can initialise `net`: every layer of the trunk (each
    layer with parameters up to the last one the file holds) present in the file, with blobs of
    the net's shapes. Caffe's copy_from aborts the process on a shape it does not expect, and a
    file lacking trunk layers (another depth, a cut file) leaves them random: BatchNorm layers
    with random statistics, a loss of NaN at once. A stand-in listed in stand-in.json skips the
    release's sha256, so this is what stops a file of another net there. Returns the file's
    blob_shapes."""
    try:
        theirs = blob_shapes(weights_path)
    except (IndexError, UnicodeDecodeError, WeightsError):
        raise WeightsError(f"{weights_path}: not a readable caffemodel (cut short or another "
                           f"kind of file); put the released file there (weights/README.md)"
                           ) from None
    own = [(name, [tuple(b.data.shape) for b in layer.blobs])
           for name, layer in zip(net._layer_names, net.layers) if len(layer.blobs)]
    found = [i for i, (name, _) in enumerate(own) if name in theirs]
    if not found:
        raise WeightsError(f"{weights_path}: no layer of the net is in this caffemodel (a file "
                           f"of another net); put the one the model names there "
                           f"(weights/README.md)")
    missing = [name for name, _ in own[:found[-1]] if name not in theirs]
    if missing:
        raise WeightsError(
            f"{weights_path}: {len(missing)} layer(s) of the net's trunk are not in this file "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): a caffemodel of "
            f"another net or depth; put the one the model names there (weights/README.md)")
    for name, mine in own:
        if name not in theirs:
            continue
        fits = len(theirs[name]) == len(mine) and all(
            shape == (tuple([1] * (4 - len(m))) + m if legacy else m)
            for (shape, legacy), m in zip(theirs[name], mine))
        if not fits:
            shown = ", ".join("x".join(map(str, sh)) for sh, _ in theirs[name])
            want = ", ".join("x".join(map(str, m)) for m in mine)
            raise WeightsError(
                f"{weights_path}: layer {name} holds blobs of {shown} where the net has {want}: "
                f"a caffemodel of another net; put the one the model names there "
                f"(weights/README.md)")
    return theirs


def init_from_pretrained(net, weights_path: Path) -> dict:
    """Copy the layers of `weights_path` into `net` by name (Caffe's copy_from).

    Returns {"weights": path, "copied": layers of `net` loaded from the file, "initialised":
    layers of `net` left as their fillers made them (the new head), "unused": layers of the file
    with no counterpart (fc1000)}. The file is checked against the net first (check_fits)."""
    source = set(check_fits(net, weights_path))      # the file's layers that hold parameters
    own = [name for name, layer in zip(net._layer_names, net.layers) if len(layer.blobs)]
    copied = [name for name in own if name in source]
    net.copy_from(str(weights_path))
    return {"weights": str(weights_path), "copied": copied,
            "initialised": [name for name in own if name not in source],
            "unused": sorted(source.difference(own))}
