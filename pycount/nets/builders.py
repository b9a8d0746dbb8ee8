"""Caffe nets of pycount, generated with caffe.NetSpec, and the prototxt files written from them.

Each model exists as three files under prototxt/<dataset>/<model>/: train_val.prototxt (LMDB Data
layers for the TRAIN and TEST phases), deploy.prototxt (an Input layer, no loss) and
solver.prototxt. They are committed; tests/test_nets.py proves they equal what this module writes.

Heads: "R" ends in one output `count` with EuclideanLoss (the paper's regression); "C" ends in
`n_classes` scores with SoftmaxWithLoss (the paper's classification baseline, classes 0..K).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pycount import config

HEADS = config.HEADS


@dataclass(frozen=True)
class NetPlan:
    """What to build: which model, for which dataset, with which head, reading which LMDBs."""
    model: config.ModelConfig
    dataset: config.DatasetConfig
    head: str = "R"
    n_classes: int = 0                 # C head only: largest training count + margin + 1
    train_source: str = ""
    val_source: str = ""
    train_targets: str = ""            # density models: the LMDBs of the per-pixel targets
    val_targets: str = ""

    @property
    def patch(self) -> int:
        """The side of the nets' input (the dataset's patch, or SIZE when resized; a density
        model's training crop)."""
        if self.model.density:
            return self.dataset.crop + 2 * self.model.context
        return self.dataset.input_size


def _caffe():
    import caffe                      # lazily: the rest of pycount imports without Caffe
    return caffe


def alexnet_adaptation(patch: int) -> str:
    """How AlexNet is adapted to a patch size; the name goes into the prototxt and the report."""
    if patch >= 128:
        return "conv1 11x11 stride 4 (as bvlc_alexnet)"
    return "conv1 5x5 stride 1 pad 2 (adapted: patch < 128 px)"


def _alexnet_trunk(n, data, plan: NetPlan, train: bool):
    caffe = _caffe()
    L, P = caffe.layers, caffe.params
    w = plan.model.width

    def ch(c):
        return max(8, int(round(c * w)))

    def conv(bottom, nout, ks, stride=1, pad=0, group=1):
        return L.Convolution(bottom, num_output=ch(nout), kernel_size=ks, stride=stride, pad=pad,
                             group=group, param=[dict(lr_mult=1, decay_mult=1),
                                                 dict(lr_mult=2, decay_mult=0)],
                             weight_filler=dict(type="msra"),
                             bias_filler=dict(type="constant", value=0.0))

    def fc(bottom, nout):
        return L.InnerProduct(bottom, num_output=nout, param=[dict(lr_mult=1, decay_mult=1),
                                                              dict(lr_mult=2, decay_mult=0)],
                              weight_filler=dict(type="msra"),
                              bias_filler=dict(type="constant", value=0.0))

    def pool(bottom):
        return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=3, stride=2)

    def lrn(bottom):
        return L.LRN(bottom, local_size=5, alpha=1e-4, beta=0.75)

    if plan.patch >= 128:
        n.conv1 = conv(data, 96, 11, stride=4)
    else:
        n.conv1 = conv(data, 96, 5, stride=1, pad=2)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.norm1 = lrn(n.relu1)
    n.pool1 = pool(n.norm1)
    n.conv2 = conv(n.pool1, 256, 5, pad=2, group=2)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.norm2 = lrn(n.relu2)
    n.pool2 = pool(n.norm2)
    n.conv3 = conv(n.pool2, 384, 3, pad=1)
    n.relu3 = L.ReLU(n.conv3, in_place=True)
    n.conv4 = conv(n.relu3, 384, 3, pad=1, group=2)
    n.relu4 = L.ReLU(n.conv4, in_place=True)
    n.conv5 = conv(n.relu4, 256, 3, pad=1, group=2)
    n.relu5 = L.ReLU(n.conv5, in_place=True)
    n.pool5 = pool(n.relu5)
    top = n.pool5
    for i in (6, 7):
        n[f"fc{i}"] = fc(top, plan.model.fc)
        top = n[f"relu{i}"] = L.ReLU(n[f"fc{i}"], in_place=True)
        if plan.model.dropout:
            top = n[f"drop{i}"] = L.Dropout(top, dropout_ratio=plan.model.dropout, in_place=True)
    return top, fc


# He et al.'s bottleneck ResNets: blocks per stage (res2..res5) and (bottleneck, output) widths.
RESNET_STAGES = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
RESNET_WIDTHS = ((64, 256), (128, 512), (256, 1024), (512, 2048))
FINETUNE = ("head", "all", "scratch")


def resnet_block_names(depth: int, stage: int) -> list[str]:
    """He's block names of one stage: letters (res4a..res4f), except stages 3 and 4 of ResNet-101
    and -152, which are numbered after the first block (res4a, res4b1..res4b22)."""
    count = RESNET_STAGES[depth][stage - 2]
    if depth == 50 or stage in (2, 5):
        return [chr(ord("a") + i) for i in range(count)]
    return ["a"] + [f"b{i}" for i in range(1, count)]


def resnet_training(model: config.ModelConfig) -> str:
    """How a ResNet is trained; the words go into the prototxt's name and the report."""
    return {"head": "ImageNet trunk frozen, new head", "all": "ImageNet trunk fine-tuned, new head",
            "scratch": "trained from scratch"}[model.finetune]


def _resnet_trunk(n, data, plan: NetPlan, train: bool):
    """He et al.'s ImageNet ResNet up to pool5, with the released deploy nets' layer names and
    parameter shapes, so their caffemodels load by name (net.copy_from); pool5 pools globally, so
    any patch of 32 px or more gives one 2048-vector."""
    caffe = _caffe()
    L, P = caffe.layers, caffe.params
    m = plan.model
    if m.depth not in RESNET_STAGES:
        raise config.ConfigError(f"ResNet depth {m.depth} is not one of "
                                 f"{', '.join(map(str, RESNET_STAGES))}")
    if m.finetune not in FINETUNE:
        raise config.ConfigError(f"unknown finetune {m.finetune!r}; valid: {', '.join(FINETUNE)}")
    lr = 0 if m.finetune == "head" else 1      # "head": the paper's frozen trunk
    # BatchNorm normalises with its stored statistics (and never updates them) in the deploy net
    # and whenever the ImageNet statistics are kept: with "all" too, since fine-tuning on small
    # batches of patches would replace them by noisy batch estimates. From scratch, Caffe's
    # per-phase default applies: batch statistics in TRAIN, the accumulated ones in TEST.
    keep_stats = not train or m.finetune != "scratch"
    bn_args = dict(batch_norm_param=dict(use_global_stats=True)) if keep_stats else {}
    bn_params = [dict(lr_mult=0, decay_mult=0)] * 3    # mean, variance, moving-average factor

    def conv_bn(name, bottom, nout, ks, stride=1, pad=0, relu=True, bias=False):
        """Convolution `name`, then in place BatchNorm, Scale (bn<x>/scale<x>: x is the name
        without "res", or "_conv1") and optionally ReLU (<name>_relu)."""
        params = [dict(lr_mult=lr, decay_mult=lr)]
        extra = {}
        if bias:
            params.append(dict(lr_mult=2 * lr, decay_mult=0))
            extra = dict(bias_filler=dict(type="constant", value=0.0))
        n[name] = L.Convolution(bottom, num_output=nout, kernel_size=ks, stride=stride, pad=pad,
                                bias_term=bias, param=params, weight_filler=dict(type="msra"),
                                **extra)
        x = name[3:] if name.startswith("res") else "_" + name
        n[f"bn{x}"] = L.BatchNorm(n[name], in_place=True, param=bn_params, **bn_args)
        top = n[f"scale{x}"] = L.Scale(n[f"bn{x}"], in_place=True, bias_term=True,
                                       param=[dict(lr_mult=lr, decay_mult=0)] * 2)
        if relu:
            top = n[f"{name}_relu"] = L.ReLU(top, in_place=True)
        return top

    # the released ResNet-50 alone has a bias on conv1
    top = conv_bn("conv1", data, 64, 7, stride=2, pad=3, bias=m.depth == 50)
    n.pool1 = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    top = n.pool1
    for stage, (mid, out) in enumerate(RESNET_WIDTHS, start=2):
        for i, block in enumerate(resnet_block_names(m.depth, stage)):
            res = f"res{stage}{block}"
            # the first block of a stage projects the shortcut (branch1) and, from res3 on,
            # halves the resolution with stride 2 on its 1x1 convolutions, as released
            stride = 2 if i == 0 and stage > 2 else 1
            shortcut = top
            if i == 0:
                shortcut = conv_bn(f"{res}_branch1", top, out, 1, stride, relu=False)
            x = conv_bn(f"{res}_branch2a", top, mid, 1, stride)
            x = conv_bn(f"{res}_branch2b", x, mid, 3, pad=1)
            x = conv_bn(f"{res}_branch2c", x, out, 1, relu=False)
            n[res] = L.Eltwise(shortcut, x)
            top = n[f"{res}_relu"] = L.ReLU(n[res], in_place=True)
    n.pool5 = L.Pooling(top, pool=P.Pooling.AVE, global_pooling=True)

    def head(bottom, nout):
        """The new layer on pool5 (never named fc1000, so copy_from leaves it initialised)."""
        return L.InnerProduct(bottom, num_output=nout, param=[dict(lr_mult=1, decay_mult=1),
                                                              dict(lr_mult=2, decay_mult=0)],
                              weight_filler=dict(type="msra"),
                              bias_filler=dict(type="constant", value=0.0))
    return n.pool5, head


TRUNKS = {"alexnet": _alexnet_trunk, "resnet": _resnet_trunk}


def fcrn_receptive_field(levels: int, convs: int = 1, decoder: str = "up-conv") -> int:
    """The widest window of input pixels that one output pixel of _fcrn depends on. Each layer
    maps an interval of its output back to its input: 3x3 conv [lo-1, hi+1], 2x2/2 pool
    [2lo, 2hi+1], the x2 bilinear Deconvolution (kernel 4, stride 2, pad 1) [ceil((lo-2)/2),
    floor((hi+1)/2)]; the skips join two paths (the hull of both). The window depends on where the
    pixel sits on the coarsest level's grid, so this is the largest over those positions."""
    def conv(iv, times=1):
        return iv[0] - times, iv[1] + times

    def unpool(iv):
        return 2 * iv[0], 2 * iv[1] + 1

    def unup(iv):
        return -((2 - iv[0]) // 2), (iv[1] + 1) // 2

    def encoder(level, iv):            # input interval of the encoder's output at `level`
        iv = conv(iv, convs)
        return iv if level == 1 else encoder(level - 1, unpool(iv))

    def stage(level, iv):              # input interval of the map the decoder gives at `level`
        if level == levels:
            return encoder(level, iv)
        deep = stage(level + 1, unup(conv(iv)) if decoder == "up-conv" else conv(unup(iv)))
        skip = encoder(level, iv)
        return min(deep[0], skip[0]), max(deep[1], skip[1])

    grid = 2 ** (levels - 1)
    return max(hi - lo + 1 for lo, hi in (stage(1, (o, o)) for o in range(grid, 2 * grid)))


def _fcrn(n, data, plan: NetPlan):
    """The density net's body (see config.MODELS["fcrn"]); returns the unscaled density map."""
    caffe = _caffe()
    L, P = caffe.layers, caffe.params
    model = plan.model
    widths = model.widths

    def conv(bottom, nout, ks=3):
        return L.Convolution(bottom, num_output=nout, kernel_size=ks, pad=ks // 2,
                             param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                             weight_filler=dict(type="msra"),
                             bias_filler=dict(type="constant", value=0.0))

    def upsample(bottom, ch):
        # x2 bilinear interpolation: fixed weights (lr_mult 0), one filter per channel
        return L.Deconvolution(bottom, param=[dict(lr_mult=0, decay_mult=0)],
                               convolution_param=dict(
                                   num_output=ch, group=ch, kernel_size=4, stride=2, pad=1,
                                   bias_term=False, weight_filler=dict(type="bilinear")))

    top, encoder = data, []
    for i, w in enumerate(widths, start=1):
        if i > 1:
            top = n[f"pool{i - 1}"] = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        for k in range(model.convs):
            suffix = f"{i}" if k == 0 else f"{i}_{k + 1}"
            n[f"conv{suffix}"] = conv(top, w)
            top = n[f"relu{suffix}"] = L.ReLU(n[f"conv{suffix}"], in_place=True)
        encoder.append(top)
    for i in range(len(widths) - 1, 0, -1):
        if model.decoder == "up-conv":
            top = n[f"up{i}"] = upsample(top, widths[i])
        n[f"dec{i}"] = conv(top, widths[i - 1])
        decoded = n[f"decrelu{i}"] = L.ReLU(n[f"dec{i}"], in_place=True)
        if model.decoder == "conv-up":
            decoded = n[f"up{i}"] = upsample(decoded, widths[i - 1])
        top = n[f"skip{i}"] = L.Eltwise(decoded, encoder[i - 1])
    return conv(top, 1, ks=1)


def _build_density(plan: NetPlan, phase: str):
    """A density net: train_val reads crops and their targets from two LMDBs in lockstep (same
    keys, no mirroring: the targets must stay aligned); the output `density` is in cells per
    pixel, the loss sees it scaled by config.DENSITY_SCALE, as are the targets."""
    caffe = _caffe()
    L, P = caffe.layers, caffe.params
    if plan.head != "R":
        raise config.ConfigError(f"{plan.model.name} predicts a density map: it has no "
                                 f"{plan.head} head (use HEAD=R)")
    grid = 2 ** (len(plan.model.widths) - 1)
    side = plan.dataset.crop + 2 * plan.model.context
    if side % grid:                  # else Caffe aborts at the first skip sum (shapes differ)
        raise config.ConfigError(
            f"{plan.model.name} pools {len(plan.model.widths) - 1} times, so its training input "
            f"({plan.dataset.crop} px crops" + (f" + 2 x {plan.model.context} px of context"
                                               if plan.model.context else "")
            + f" = {side} px) must be a multiple of {grid}: use CROP= a multiple of {grid}, e.g. "
              f"{max(grid, round(plan.dataset.crop / grid) * grid)}")
    n = caffe.NetSpec()
    mean, scale = input_transform(plan.model, plan.dataset)
    image_t = dict(mean_value=list(mean), scale=scale)
    target_t = dict(scale=config.DENSITY_SCALE)
    b = plan.model.solver.batch
    if phase == "deploy":
        n.data = L.Input(shape=dict(dim=[1, 3, plan.patch, plan.patch]))
    else:
        for prefix, phase_, images, targets in (("", caffe.TRAIN, plan.train_source,
                                                 plan.train_targets),
                                                ("val_", caffe.TEST, plan.val_source,
                                                 plan.val_targets)):
            n[prefix + "data"] = L.Data(source=images, backend=P.Data.LMDB, batch_size=b,
                                        transform_param=image_t, include=dict(phase=phase_))
            n[prefix + "target"] = L.Data(source=targets, backend=P.Data.LMDB, batch_size=b,
                                          transform_param=target_t, include=dict(phase=phase_))
    # a linear output: a ReLU here (a density is never negative) let one of our first trials
    # collapse to an all-zero map, where no gradient flows back
    n.score = _fcrn(n, n.data, plan)
    if phase == "deploy":
        n.density = L.Power(n.score, scale=1.0 / config.DENSITY_SCALE)
    elif plan.model.context:
        # the loss sees the central crop x crop of the map only (the target's size); the
        # context around it is input, never supervised
        n.supervised = L.Crop(n.score, n.target, axis=2, offset=plan.model.context)
        n.loss = L.EuclideanLoss(n.supervised, n.target)
    else:
        n.loss = L.EuclideanLoss(n.score, n.target)
    return n.to_proto()


def input_transform(model: config.ModelConfig, ds: config.DatasetConfig) -> tuple[tuple, float]:
    """(mean BGR, scale) that the net's input expects: ImageNet's for pretrained nets, else the
    dataset's mean and a 1/64 scale."""
    return (model.mean_bgr or ds.mean_bgr), model.input_scale


def _transform(plan: NetPlan, train: bool) -> dict:
    mean, scale = input_transform(plan.model, plan.dataset)
    # (config.TRAIN_MIRROR: never with a frozen trunk, whose features are cached)
    t = dict(mean_value=list(mean),
             mirror=train and config.TRAIN_MIRROR and plan.model.finetune != "head")
    if scale != 1.0:
        t["scale"] = scale
    return t


def _build(plan: NetPlan, phase: str):
    """phase: "train_val" (Data layers for both phases, loss) or "deploy" (Input, no loss)."""
    caffe = _caffe()
    L, P = caffe.layers, caffe.params
    if plan.head not in HEADS:
        raise config.ConfigError(f"unknown head {plan.head!r}; valid: {', '.join(HEADS)} (HEAD=...)")
    if plan.model.density:
        return _build_density(plan, phase)
    n = caffe.NetSpec()
    if phase == "deploy":
        n.data = L.Input(shape=dict(dim=[1, 3, plan.patch, plan.patch]))
    else:
        n.data, n.label = L.Data(source=plan.train_source, backend=P.Data.LMDB,
                                 batch_size=plan.model.solver.batch, ntop=2,
                                 transform_param=_transform(plan, True),
                                 include=dict(phase=caffe.TRAIN))
        # the TEST-phase twin shares the tops; NetSpec needs it under another name
        n.val_data, n.val_label = L.Data(source=plan.val_source, backend=P.Data.LMDB,
                                         batch_size=plan.model.solver.batch, ntop=2,
                                         transform_param=_transform(plan, False),
                                         include=dict(phase=caffe.TEST))
    top, fc = TRUNKS[plan.model.family](n, n.data, plan, phase != "deploy")
    if plan.head == "R":
        n.count = fc(top, 1)
        if phase != "deploy":
            n.loss = L.EuclideanLoss(n.count, n.label)
    else:
        n.score = fc(top, plan.n_classes)
        if phase == "deploy":
            n.prob = L.Softmax(n.score)
        else:
            n.loss = L.SoftmaxWithLoss(n.score, n.label)
            n.accuracy = L.Accuracy(n.score, n.label, include=dict(phase=caffe.TEST))
    return n.to_proto()


def net_name(plan: NetPlan) -> str:
    name = f"{plan.model.name}-{plan.head}-p{plan.patch}"
    if plan.model.family == "alexnet":
        name += " | " + alexnet_adaptation(plan.patch)
    elif plan.model.family == "resnet":
        name += " | " + resnet_training(plan.model)
    elif plan.model.density:
        w = plan.model.widths
        name = (f"{plan.model.name}-density-c{plan.patch} | widths {'-'.join(map(str, w))}, "
                f"sigma {plan.dataset.sigma:g}, receptive field "
                f"{fcrn_receptive_field(len(w), plan.model.convs, plan.model.decoder)} px")
        if plan.model.context:
            name += f", loss on the central {plan.dataset.crop} px"
    return name


def net_prototxt(plan: NetPlan, phase: str) -> str:
    proto = _build(plan, phase)
    proto.name = net_name(plan)
    text = str(proto)
    if phase == "train_val":
        # NetSpec names the TEST-phase Data layer's tops val_data/val_label; Caffe needs both
        # phases to produce the same blob names.
        for tag in ("data", "label", "target"):
            text = text.replace(f'top: "val_{tag}"', f'top: "{tag}"')
    return text


def solver_prototxt(plan: NetPlan, net_path: str, snapshot_prefix: str) -> str:
    caffe_pb2 = _caffe().proto.caffe_pb2
    s = plan.model.solver
    sp = caffe_pb2.SolverParameter()
    sp.net = net_path
    sp.type = s.type
    sp.base_lr, sp.lr_policy, sp.gamma = s.base_lr, s.lr_policy, s.gamma
    if s.lr_policy == "poly":
        sp.power = s.power
    elif s.lr_policy == "multistep":
        sp.stepvalue.extend(s.stepvalues)
    else:
        sp.stepsize = s.stepsize or (2 * s.max_iter) // 3
    sp.momentum, sp.weight_decay, sp.max_iter = s.momentum, s.weight_decay, s.max_iter
    if s.clip_gradients:
        sp.clip_gradients = s.clip_gradients
    # Validation runs from Python (pycount.training.validation) over the held-out images' patches; the solver
    # only builds the TEST net for it.
    sp.test_iter.append(1)
    sp.test_interval = s.max_iter + 1
    sp.test_initialization = False
    sp.display = 0
    sp.snapshot = 0                    # pycount.training.trainer snapshots itself, atomically
    sp.snapshot_prefix = snapshot_prefix
    sp.random_seed = 1701
    sp.solver_mode = caffe_pb2.SolverParameter.CPU
    return str(sp)


def run_plan(ds: config.DatasetConfig, model: config.ModelConfig, head: str = "R") -> NetPlan:
    """The plan of a run's own prototxts: the absolute paths of its dataset's LMDBs."""
    if model.density:
        (train, train_t), (val, val_t) = (config.density_lmdbs(ds, p, model.context)
                                          for p in ("train", "val"))
        return NetPlan(model=model, dataset=ds, head=head, train_source=str(train.resolve()),
                       val_source=str(val.resolve()), train_targets=str(train_t.resolve()),
                       val_targets=str(val_t.resolve()))
    root = config.lmdb_dir(ds)
    return NetPlan(model=model, dataset=ds, head=head,
                   n_classes=config.n_classes(ds) if head == "C" else 0,
                   train_source=str((root / "train_lmdb").resolve()),
                   val_source=str((root / "val_lmdb").resolve()))


_DIRS = re.compile(r'"/[^"]*/([^/"]*)"')


def comparable(text: str) -> str:
    """A prototxt less what does not change what is trained: the net's descriptive name (its
    first line) and the folders of the files it names (LMDBs, snapshots), so that a run that was
    moved, or read its LMDBs from another data root, still matches."""
    lines = text.splitlines()
    if lines and lines[0].startswith("name:"):
        lines = lines[1:]
    return _DIRS.sub(r'"\1"', "\n".join(lines))


def drift(run: Path, plan: NetPlan) -> list[str]:
    """Which of a run's train_val and solver prototxts differ from what `plan` gives today
    (missing counts as different): [] for a run of today's settings, and where Caffe is not
    built (`make audit` reads runs without it; nothing can be compared then)."""
    try:
        today = {"train_val": net_prototxt(plan, "train_val"),
                 "solver": solver_prototxt(plan, "/run/train_val.prototxt", "/run/snapshots/snap")}
    except ImportError:
        return []
    changed = []
    for phase, text in today.items():
        f = Path(run) / f"{phase}.prototxt"
        if not f.is_file() or comparable(f.read_text()) != comparable(text):
            changed.append(phase)
    return changed


def committed_dir(plan: NetPlan) -> Path:
    return config.PROTOTXT_DIR / plan.dataset.name / config.run_name(plan.model, plan.head)


def default_plan(dataset: str, model: str, head: str = "R") -> NetPlan:
    """The plan of the committed prototxts: LMDB paths relative to the repository root."""
    ds = config.dataset(dataset)
    lmdb_rel = f"data/lmdb/{ds.name}"
    m = config.model(model, ds)
    if m.density:
        d = f"{lmdb_rel}/{config.density_lmdbs(ds, 'train', m.context)[0].parent.name}"
        return NetPlan(model=m, dataset=ds, head=head, train_source=f"{d}/train_lmdb",
                       val_source=f"{d}/val_lmdb", train_targets=f"{d}/train_targets_lmdb",
                       val_targets=f"{d}/val_targets_lmdb")
    return NetPlan(model=m, dataset=ds, head=head,
                   n_classes=config.n_classes(ds) if head == "C" else 0,
                   train_source=f"{lmdb_rel}/train_lmdb", val_source=f"{lmdb_rel}/val_lmdb")


def write_net_files(plan: NetPlan, out_dir: Path, snapshot_prefix: str,
                    solver_net_path: str | None = None) -> dict[str, Path]:
    """Write train_val, deploy and solver prototxts of `plan` into `out_dir`.

    The solver names its net by `solver_net_path` (default: the absolute train_val path)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {phase: out_dir / f"{phase}.prototxt" for phase in ("train_val", "deploy", "solver")}
    files["train_val"].write_text(net_prototxt(plan, "train_val"))
    files["deploy"].write_text(net_prototxt(plan, "deploy"))
    files["solver"].write_text(solver_prototxt(
        plan, solver_net_path or str(files["train_val"].resolve()), snapshot_prefix))
    return files


def committed_plans() -> list[NetPlan]:
    """The nets committed under prototxt/: every model and head once, for the reference dataset,
    plus the AlexNets of the first dataset whose patch changes their layers (bvlc_alexnet's
    conv1 from 128 px on: Ki67's 200 px). Other datasets' nets differ from these only in what
    tests/test_nets.py allows (input side, mean, LMDB paths, batch, classes, name); each run
    writes its own exact nets into its folder."""
    ref = config.REFERENCE_DATASET
    other_alexnets = {}                      # adaptation -> the first dataset that needs it
    for name, ds in config.DATASETS.items():
        adaptation = alexnet_adaptation(ds.patch)
        if adaptation != alexnet_adaptation(config.DATASETS[ref].patch):
            other_alexnets.setdefault(adaptation, name)
    plans = []
    for m, model in config.MODELS.items():
        if model.classic:                    # no Caffe net
            continue
        heads = HEADS if model.family in TRUNKS else ("R",)
        datasets = [ref] + (list(other_alexnets.values()) if model.family == "alexnet" else [])
        plans += [default_plan(d, m, h) for d in datasets for h in heads]
    return plans


def write_committed(root: Path | None = None) -> list[Path]:
    """(Re)write every committed prototxt under prototxt/ (or the same tree under `root`)."""
    written = []
    for plan in committed_plans():
        rel = committed_dir(plan).relative_to(config.PROTOTXT_DIR)
        files = write_net_files(plan, (root or config.PROTOTXT_DIR) / rel,
                                snapshot_prefix=f"runs/{rel.as_posix()}/snapshots/snap",
                                solver_net_path=f"prototxt/{rel.as_posix()}/train_val.prototxt")
        written += files.values()
    return written


def preprocess(rgb: np.ndarray, model: config.ModelConfig, ds: config.DatasetConfig) -> np.ndarray:
    """RGB uint8 patches (N x H x W x 3) -> the net's input blob (N x 3 x H x W, BGR, mean
    subtracted, scaled): what Caffe's transform_param does to the LMDB records."""
    mean, scale = input_transform(model, ds)
    bgr = rgb[..., ::-1].astype(np.float32)
    bgr -= np.asarray(mean, np.float32)
    if scale != 1.0:
        bgr *= scale
    return bgr.transpose(0, 3, 1, 2)
