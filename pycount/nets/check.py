"""A deploy prototxt checked in Python before either engine builds it: Caffe aborts the process
(a glog CHECK) on a file that does not parse, names an unknown layer type or reads a blob no
layer makes, and OpenCV fails only at the first forward. RunError names the file and the fix."""
from __future__ import annotations

import re
from pathlib import Path

from pycount.errors import RunError


def _damaged(path: Path, why: str) -> RunError:
    return RunError(f"{path} {why}: the run folder is damaged; copy it again, or train it again "
                    f"(make train RESUME=0)")


def _included(layer) -> bool:
    """Whether a layer is part of the TEST-phase net (its include / exclude rules)."""
    test = 1                                   # caffe_pb2.TEST
    if any(r.HasField("phase") and r.phase == test for r in layer.exclude):
        return False
    return not layer.include or any(not r.HasField("phase") or r.phase == test
                                    for r in layer.include)


def input_dims(text: str) -> list[int]:
    """The input shape a deploy prototxt's text declares (its first four `dim:` values, batch
    first); [] where it declares fewer."""
    dims = [int(d) for d in re.findall(r"dim:\s*(\d+)", text)[:4]]
    return dims if len(dims) == 4 else []


def check_deploy(path, layer_types=None) -> None:
    """Parse `path` as a Caffe NetParameter and check that it declares an input shape, that every
    layer's type is one this Caffe has (`layer_types`: caffe.layer_type_list(); None: pycaffe's,
    when it imports) and that every bottom blob is made by an input or an earlier layer."""
    path = Path(path)
    try:
        from caffe.proto import caffe_pb2
        from google.protobuf import text_format
    except ImportError:                        # no pycaffe: OpenCV, which raises, reads the net
        return
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise _damaged(path, f"cannot be read ({e.__class__.__name__})") from None
    param = caffe_pb2.NetParameter()
    try:
        text_format.Merge(text, param)
    except text_format.ParseError as e:
        raise _damaged(path, f"is not a valid net definition ({e})") from None
    if param.layers:                           # Caffe's V1 layer format: pycount never writes it
        raise _damaged(path, "uses Caffe's old V1 layer format, which pycount does not write")
    layers = [la for la in param.layer if _included(la)]
    if not layers:
        raise _damaged(path, "holds no layers")
    if layer_types is None:
        try:
            import caffe
            layer_types = caffe.layer_type_list()
        except (ImportError, AttributeError):
            layer_types = None
    if layer_types is not None:
        known = set(layer_types)
        unknown = sorted({la.type for la in layers if la.type not in known})
        if unknown:
            raise _damaged(path, f"names layer type(s) this Caffe does not have: "
                           f"{', '.join(repr(t) for t in unknown)}")
    blobs = set(param.input)
    declared = bool(param.input_shape) or bool(param.input_dim)
    for la in layers:
        for b in la.bottom:
            if b not in blobs:
                raise _damaged(path, f"has layer {la.name!r} reading blob {b!r}, which no input "
                               f"or earlier layer makes")
        if la.type == "Input":
            declared = declared or bool(la.input_param.shape)
        blobs.update(la.top)
    if not declared:
        raise _damaged(path, "declares no input shape (an Input layer or input_shape)")
