"""A run's snapshots, checked before Caffe reads them: snapshots/latest.json (the last complete
caffemodel/solverstate pair and the best validation so far), and a solver restored from a pair
whose weights match the net, wherever the run folder has moved since."""
from __future__ import annotations

import json
import math
from pathlib import Path

from pycount.errors import TrainError


def read_latest(latest: Path) -> dict:
    """snapshots/latest.json, checked: the snapshot pair it names and the best validation."""
    try:
        state = json.loads(latest.read_text())
        ok = (isinstance(state, dict) and all(isinstance(state.get(k), str)
                                              for k in ("solverstate", "caffemodel"))
              and isinstance(state.get("best_iter"), int)
              and isinstance(state.get("best_val_mae"), (int, float, type(None)))
              and isinstance(state.get("iter", 0), int))
    except (OSError, ValueError):
        ok = False
    if ok and state["best_val_mae"] is None:   # no validation before this snapshot
        state["best_val_mae"] = math.inf
    if not ok:
        raise TrainError(f"{latest} is corrupt or incomplete; its snapshots cannot be resumed: "
                         f"train again with RESUME=0")
    return state


def restore_solver(solver, solverstate: Path, caffemodel: Path) -> None:
    """solver.restore() with the solverstate's weights file pointed at `caffemodel`: Caffe stores
    the absolute path it wrote, and aborts (a glog CHECK) when the folder has moved since."""
    from caffe.proto import caffe_pb2
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(solverstate.read_bytes())
    except Exception as e:                  # protobuf's DecodeError: a truncated file
        raise TrainError(f"{solverstate} is corrupt ({e}); train again with RESUME=0") from None
    if not len(state.history):              # an empty file parses as an empty state
        raise TrainError(f"{solverstate} is empty or incomplete (no solver history); train "
                         f"again with RESUME=0")
    check_snapshot_weights(solver.net, caffemodel)
    if state.learned_net != str(caffemodel.resolve()):
        state.learned_net = str(caffemodel.resolve())
        fixed = solverstate.with_name(".restore.solverstate")
        fixed.write_bytes(state.SerializeToString())
        try:
            solver.restore(str(fixed))
        finally:
            fixed.unlink(missing_ok=True)
    else:
        solver.restore(str(solverstate))


def check_snapshot_weights(net, caffemodel: Path) -> None:
    """The snapshot's weights read in Python and matched to the train net, layer by layer:
    Caffe aborts on a truncated file, and silently skips layers a file lacks (another head's
    snapshot resumed from random weights in its last layer)."""
    from caffe.proto import caffe_pb2
    again = "train again with RESUME=0"
    param = caffe_pb2.NetParameter()
    try:
        param.ParseFromString(caffemodel.read_bytes())
    except Exception:                       # protobuf's DecodeError: a truncated file
        raise TrainError(f"{caffemodel} is corrupt (not a complete caffemodel); {again}") from None
    held = {layer.name: [len(b.data) for b in layer.blobs] for layer in param.layer}
    del param
    for name, blobs in net.params.items():
        sizes = held.get(name)
        if sizes is None:
            raise TrainError(f"{caffemodel} has no weights for layer {name!r}: it was written by "
                             f"another net or is incomplete; {again}")
        if sizes != [b.data.size for b in blobs]:
            raise TrainError(f"{caffemodel}: layer {name!r} holds {sizes} values, the net "
                             f"{[b.data.size for b in blobs]}: written by another net; {again}")
