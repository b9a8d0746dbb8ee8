"""A run's snapshots, checked before Caffe reads them: snapshots/latest.json (the last complete
caffemodel/solverstate pair and the best validation so far), and a solver restored from a pair
whose weights and solver history match the net, wherever the run folder has moved since."""
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


def restore_solver(solver, solverstate: Path, caffemodel: Path, iteration: int | None = None,
                   stepvalues: tuple[int, ...] | None = None) -> None:
    """solver.restore() with the solverstate's weights file pointed at `caffemodel`: Caffe stores
    the absolute path it wrote, and aborts (a glog CHECK) when the folder has moved since.
    `iteration`: the one latest.json gives the pair (None: an older latest.json without it).
    `stepvalues`: today's multistep schedule (None for the other policies). Caffe keeps the
    count of steps passed in the solverstate and only ever counts it up, so a run resumed with
    its steps moved (ITERS=: SolverConfig.stretched) trained on at the old schedule's rate, 100x
    below the one its log showed when the old steps lay behind it; the count is set from
    today's steps, as a run on today's schedule would hold it at this iteration."""
    from caffe.proto import caffe_pb2
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(solverstate.read_bytes())
    except Exception as e:                  # protobuf's DecodeError: a truncated file
        raise TrainError(f"{solverstate} is corrupt ({e}); train again with RESUME=0") from None
    if not len(state.history):              # an empty file parses as an empty state
        raise TrainError(f"{solverstate} is empty or incomplete (no solver history); train "
                         f"again with RESUME=0")
    check_solver_history(solver, state, solverstate, iteration)
    check_snapshot_weights(solver.net, caffemodel)
    changed = state.learned_net != str(caffemodel.resolve())
    state.learned_net = str(caffemodel.resolve())
    if stepvalues is not None:
        # (SGDSolver::GetLearningRate counts a step at the first iteration >= its value: after
        # `iter` iterations the count is that of the steps below it)
        step = sum(state.iter > v for v in stepvalues)
        changed |= state.current_step != step
        state.current_step = step
    if changed:
        fixed = solverstate.with_name(".restore.solverstate")
        fixed.write_bytes(state.SerializeToString())
        try:
            solver.restore(str(fixed))
        finally:
            fixed.unlink(missing_ok=True)
    else:
        solver.restore(str(solverstate))


# History blobs a Caffe solver keeps per learnable parameter blob (SGD's momentum, AdaGrad's and
# RMSProp's squared gradients: one; Adam's two moments and AdaDelta's two running means: two, all
# the first ones, then all the second ones), by pycaffe's class of the solver
HISTORIES_PER_PARAM = {"AdamSolver": 2, "AdaDeltaSolver": 2}


def check_solver_history(solver, state, solverstate: Path, iteration: int | None) -> None:
    """The parsed solverstate matched to the solver it is to be restored into: Caffe aborts (a
    glog CHECK) on a history of another length, and takes history blobs of other shapes as they
    come (the C head's solverstate restored into the R head's net trained on, the momentum of its
    last layer reshaped from another layer's); its iteration is the one latest.json gives the
    pair, or the log, validation and weight average would follow the wrong count."""
    again = "train again with RESUME=0"
    if iteration is not None and state.iter != iteration:
        raise TrainError(f"{solverstate} is the solver's state at iteration {state.iter}, but "
                         f"{solverstate.parent / 'latest.json'} names it with the weights of "
                         f"iteration {iteration}: the pair is mixed up; {again}")
    # the net's learnable blobs in Caffe's order (pycount's nets share no parameter by name, so
    # each layer's blobs are its own): layer name, blob index, shape
    params = [(name, i, tuple(b.shape)) for name, blobs in solver.net.params.items()
              for i, b in enumerate(blobs)]
    kind = type(solver).__name__
    per = HISTORIES_PER_PARAM.get(kind, 1)
    if len(state.history) != per * len(params):
        raise TrainError(f"{solverstate} holds {len(state.history)} history blobs, where the "
                         f"{kind} of this net keeps {per * len(params)} ({per} for each of its "
                         f"{len(params)} parameter blobs): written by another net or solver, or "
                         f"damaged; {again}")
    for k, blob in enumerate(state.history):
        name, i, shape = params[k % len(params)]
        have, want = _proto_shape(blob, shape)
        if have != want:
            raise TrainError(f"{solverstate}: history blob {k} is {have}, where blob {i} of "
                             f"layer {name!r} is {want}: written by another net, or damaged; "
                             f"{again}")
        count = math.prod(shape)
        values = len(blob.double_data) or len(blob.data)
        diffs = len(blob.double_diff) or len(blob.diff)
        if values != count or diffs not in (0, count):
            what = (f"{values} values" if values != count
                    else f"{diffs} gradient values (diff)")
            raise TrainError(f"{solverstate}: history blob {k} holds {what} for the "
                             f"{count} of blob {i} of layer {name!r}: damaged; {again}")


def _proto_shape(blob, shape: tuple) -> tuple[tuple, tuple]:
    """(the BlobProto's shape, the parameter's shape to compare it with): a legacy proto's
    num, channels, height and width are matched as Caffe does, against the shape padded to four
    axes with 1s in front."""
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        legacy = (blob.num, blob.channels, blob.height, blob.width)
        return legacy, ((1,) * (4 - len(shape)) + shape if len(shape) <= 4 else shape)
    return tuple(blob.shape.dim), shape


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
