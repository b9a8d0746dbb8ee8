"""Every setting of pycount in one place: datasets, models, solvers, paths.

Numbers that come from the paper (Xue et al. 2016, section 3.2) are marked as such; the others are
our choices, with the reason next to them. Nothing here is written twice elsewhere.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from pycount.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PROTOTXT_DIR = ROOT / "prototxt"


# What a command uses when it is not told (the Makefile passes only the variables a user sets, so
# these are the defaults of `make` and of `pycount` alike).
DEFAULT_DATASET = "synthetic"        # the embedded default: generated, no download
DEFAULT_MODEL = "alexnet-lite"       # trains on 2 CPU cores in minutes
DEFAULT_HEAD = "R"                   # the paper's regression head
DEFAULT_COUNT_OUT = "pycount-counts"  # `pycount count`'s output folder
EVAL_HEATMAPS = 8   # `make eval` draws the Fig. 6 heatmaps of the first this many test images
# the tallest heatmap figure `pycount count` draws, in inches (7 wide): a 20 x 5,000 px image
# asked matplotlib for a 1,500-inch figure, which it refuses (more than 2^16 px at 100 dpi)
OVERLAY_MAX_HEIGHT_IN = 40
# the heatmap figure draws the image and its density at most this many pixels on their longer
# side (area-averaged, which keeps cells / px^2): the figure is ~700 px wide, and an 8,192 px image
# drawn as it is asked matplotlib for 512 MiB of float64 and failed on a 2.5 GB address limit
OVERLAY_MAX_PX = 1400
# the longest heatmap file name `pycount count` writes, in bytes: a file name holds 255 on Linux
# and macOS, and the temporary it is written as first adds ~15 (a 244-byte image name stopped the
# count with "File name too long"); a longer image name is cut, with a hash of it kept
HEATMAP_NAME_MAX_BYTES = 224
# a patch model cuts and predicts an image's sliding windows this many at a time: the whole stack
# of a 4,096 px image's 200 px windows (Ki67's patch, stride 50) was 0.75 GB before the predictor
# resized a second copy of it
COUNT_WINDOW_CHUNK = 1024
# progress bars off a terminal (logs, CI): a line every tenth of the work, and at least this often
PROGRESS_LOG_SECONDS = 300
# share of a patch model's count of one image that its windows take in the progress shown inside
# a large image (the rest: the tiles its plain tiling estimate lacks, where the stride does not
# divide the patch)
PROGRESS_WINDOWS_SHARE = 0.9
# a bar shows a rate and an eta only once this much of its work has been timed: a first update a
# millisecond after the start read 118,441 images/s, and one after the first record of a slow
# start 0.4 patches/s (eta 25 days); until then it prints "-" for both
PROGRESS_RATE_AFTER_SECONDS = 1.0
# `make protocol`: the density counters' protocol (Lempitsky & Zisserman; FCRN; Count-ception):
# N training images drawn with each seed, two runs at a time on 2 cores; on the set and with the
# model the published figures of that protocol are for (VGG cells; FCRN-A, Count-ception)
PROTOCOL_DATASET = "bacterial"
PROTOCOL_MODEL = "fcrn"
PROTOCOL_NS = (32, 50)
PROTOCOL_SEEDS = (1, 2, 3, 4, 5)
PROTOCOL_JOBS = 2
# OpenBLAS threads of each Caffe process when several share the cores (protocol jobs, replicate
# beside other work): 1. Measured (docs/caffe-speed.md): with spare cores 2 threads beat 1
# (alexnet-lite 363 vs 253 images/s, ResNet-50 81 vs 61), so a lone training keeps OpenBLAS's
# default; Debian's pthreads flavour, never the OpenMP one (2-10x slower on every net here).
BLAS_THREADS_SHARED = 1


# An environment variable set but empty (PYCOUNT_RUNS= in a shell or a CI file) counts as unset,
# as ${VAR:-default} in the shell scripts: read as a path it meant the working folder, and make
# train wrote <dataset>/ and lmdb/ there (and the audit took it for the project's own runs/).


def home() -> Path:
    """The folder that holds data/, runs/ and weights/ by default: the checkout pycount runs from
    (ROOT, beside its Makefile), or the working folder for a package installed by `pip install .`
    (ROOT is then site-packages: runs and LMDBs were written inside the installation)."""
    return ROOT if (ROOT / "Makefile").is_file() else Path.cwd()


def data_dir() -> Path:
    """Where generated datasets and LMDBs live (git-ignored); PYCOUNT_DATA overrides."""
    return Path(os.environ.get("PYCOUNT_DATA") or home() / "data")


def runs_dir() -> Path:
    """Where training and evaluation runs are written; PYCOUNT_RUNS overrides."""
    return Path(os.environ.get("PYCOUNT_RUNS") or home() / "runs")


def weights_dir() -> Path:
    """Where the ImageNet caffemodels are looked for (weights/); PYCOUNT_WEIGHTS overrides."""
    return Path(os.environ.get("PYCOUNT_WEIGHTS") or home() / "weights")




SPLITS_DIR = Path(__file__).resolve().parent / "data" / "splits"


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    layout: str                # which reader of pycount.data.readers reads it
    patch: int                 # square patch side, px (paper, section 3.2)
    stride: int                # sliding-window stride, px (< patch / 2 per the paper)
    rot_step: int              # rotation step for augmentation, degrees
    train_ids: tuple[str, ...]  # the split; empty: drawn from the images found (see prepare)
    test_ids: tuple[str, ...]
    n_val: int                 # training *images* held out to monitor training
    subdir: str                # folder under DATA_ROOT (or data/ when generated) with the images
    mean_bgr: tuple[float, float, float]  # per-channel mean subtracted by the nets (see below)
    max_patch_count: int       # C head: classes 0..max_patch_count (largest count seen + margin)
    generated: str = ""        # "synthetic" / "ki67": generated under data/ on first use
    size: int = 0              # patches resized to this side for the nets (224/227); 0: native
    encoded: bool = False      # LMDB holds PNG-encoded patches (Caffe decodes them): less disk
    # The training LMDB keeps only the first `train_patches` patches of its shuffled read order
    # (0: all): exactly what a training reading that many sees in the whole database (lmdbio.
    # write_lmdb's `keep`), where the whole one would not fit on the disk
    train_patches: int = 0
    description: str = ""
    # Density models (issue #7): Gaussian width of the per-pixel targets, and the side and stride
    # of the training crops (a multiple of 8: the nets pool three times)
    sigma: float = 2.0
    crop: int = 64
    crop_stride: int = 64
    # Stain augmentation of the density models' training crops (HED=; 0: none): each crop's
    # haematoxylin, eosin and DAB amounts scaled by 1 + U(-h, h) and shifted by U(-h, h) x the
    # crop's mean amount (Tellez et al. 2018's "HED" jitter; pycount.data.stain). Measured on
    # nuclei (fcrn, 4,000 iterations, recorded split, 2026-12-02): HED=0.2 test MAE 44.00 against
    # 47.27 without, a paired difference of -3.3 +- 2.3 (s.e.) better on 24 of 50 images, and a
    # worse validation patch MAE (2.18 against 1.89): no clear gain, so 0 stays the default. At
    # the default sigma 2 and the full 8,000 iterations (2026-12-03): 34.91 against 35.59, paired
    # -0.68 +- 1.71, closer on 28 of 50: still none. An own folder's is inferred from its colour
    # (OWN_HED_JITTER; OWN_INFERRED until owndata.resolve has).
    hed_jitter: float = 0.0
    # Scale augmentation of the density models' training crops (ZOOM=z; 0: none): besides each
    # training image as it is, crops are cut from it resized by 1 / (1 + z) and by 1 + z, its
    # dots moved with the pixels and each Gaussian's width scaled alike (still one cell each), so
    # the net sees the cells from 1 / (1 + z) to 1 + z times their size; ~3x the crops.
    # Measured on nuclei (fcrn-ctx, sigma 2, 8,000 its, recorded split, 2026-12-06): ZOOM=0.25
    # 34.22 against 33.95 without, paired +0.27 +- 4.95 (closer on 28 of 50): the slope of
    # counted on true 0.905 -> 0.98 (dense images no longer under-counted) but images of 150-300
    # cells over-counted more, mean error -3.2 -> +9.8 (bench/results/2026-12-06-vm-paired-
    # nuclei-zoom-scale2.md). ZOOM=0.1: 30.65, paired -3.30 +- 2.73 (closer on 27 of 50;
    # 2026-12-06-vm-paired-nuclei-zoom01.md); on RESPLIT=3 -1.71 +- 1.61 and RESPLIT=4 -0.48 +-
    # 1.47 (-split3-zoom01.md, -split4-zoom01.md): over the three splits -1.83 per image (closer
    # on 82 of 150), and it triples the crops; with RESPLIT=2638 (-5.40 +- 2.78,
    # -split2638-zoom01.md) over four splits -2.72 per image, lower on all four, standard error
    # 1.41 with each image counted once (1.9 standard errors; 1.06 over the split means, 3 df;
    # bench/results/2026-12-06-vm-pooled-nuclei-zoom01-four-splits.md). A fifth split, RESPLIT=2
    # (2026-12-07, 6,264 s at one thread): 40.95 against 38.71, paired +2.25 +- 1.23 (closer on 21
    # of 50; 2026-12-07-vm-paired-nuclei-split2-zoom01.md); over the five splits -1.73 per image,
    # lower on 4 of 5, s.e. 1.14 by image (1.5 s.e.) and 1.29 over the split means (4 df):
    # within split-to-split noise (2026-12-07-vm-pooled-nuclei-zoom01-five-splits.md). Twice the iterations at
    # ZOOM=0.1 (16,000: 4.3 passes over its crops) count 31.82, paired +1.15 +- 1.95 (closer on
    # 25 of 50; -ctx-zoom01-16k.md): the zoomed set is not under-trained at 8,000. fcrn (no
    # context) on the recorded split: 35.40 against 35.59, paired -0.19 +- 1.59
    # (2026-12-06-vm-paired-nuclei-zoom01-fcrn.md): the gain is fcrn-ctx's. On
    # bacterial (fcrn, all 100 training images) ZOOM=0.1 costs: 2.69 against 2.19, paired +0.50 +-
    # 0.22 (closer on 47 of 100; 2026-12-06-vm-paired-bacterial-zoom01.md). 0 stays the default
    # everywhere: the nuclei gain did not hold on the fifth split (docs/density-model.md).
    zoom: float = 0.0
    # Stain normalisation of every image before it is cut or counted (STAIN=; "": none; one of
    # STAIN_METHODS): "reinhard" gives each image the training images' average mean and spread
    # of each CIE L*a*b* channel; "macenko" unmixes each image's own haematoxylin and eosin and
    # makes it again with the training images' stain colours and amounts (pycount.data.stain).
    # `stain_ref` is that target, measured on the training images by `prepare` and kept in the
    # run's train.json, so counting with the run needs no dataset. Measured on nuclei (fcrn,
    # sigma 2, 8,000 iterations, the recorded split, 2026-12-03): macenko 46.98 against 35.59
    # without, paired +11.39 +- 4.70 (closer on 15 of 50), worse at every density, images of
    # 150-300 marks over-counted by 34 on average (was 10), img74's 8 marks counted as 70: the
    # faint stain of images with few nuclei is scaled up towards nuclei's. Reinhard was not
    # trained: it spreads the test images' haematoxylin further (bench.stain_examples). So "" is
    # the default.
    stain_norm: str = ""
    stain_ref: tuple = ()
    # The literature's protocol (TRAIN_N=32 SEED=1): train on n images drawn from the training
    # images with this seed; 0: all of them
    train_n: int = 0
    seed: int = 0
    # RESPLIT=s (s > 0): the recorded split's train and test images pooled and drawn again with
    # seed s, at the same sizes: the spread from split to split, where the paper's split is unknown
    resplit: int = 0
    # A lab's own folder (DATASET=path/to/folder, layout "folder"; see folder_dataset): images
    # smaller than a patch or crop are padded with the mean colour instead of refused; `marker` is
    # the Cell Counter type or QuPath class counted ("" = all); `iters` the training iterations
    # (0: inferred from the LMDB's size); `spec` the settings its pycount.toml fixes; `defaults`
    # (patch, stride, rot_step, sigma) as inferred or fixed there, before PATCH= etc. (the variant)
    pad: bool = False
    marker: str = ""
    iters: int = 0
    spec: tuple[str, ...] = ()
    defaults: tuple = ()
    # How images deeper than 8 bits (16-bit, float) become the 8-bit RGB the nets read: (lo, hi)
    # raw values mapped to 0 and 255 for every image of the dataset, or () for each image's own
    # stretch (DEPTH_PERCENTILES). An own folder's is inferred from its training images
    # (owndata.resolve) and kept in its runs' dataset.json; the named sets are 8-bit.
    depth_range: tuple = ()
    # The kinds of values an own folder's training images had, as decoded ("uint8", "uint16",
    # "float32"; owndata.resolve), kept in its runs' dataset.json: `count` marks an image of
    # another kind suspect, as it reads otherwise (a 16-bit field stretched on its own where the
    # run learned from 8-bit images). The named sets are 8-bit; () unknown (a run from before).
    image_dtypes: tuple = ("uint8",)
    # Every image resized by this factor as it is read, in preparing, evaluating and counting
    # alike (SCALE=; pycount.data.readers.rescale): the cells' size in pixels is what the nets'
    # windows and receptive field are measured against, so images at a higher magnification
    # (larger cells) can be brought to the size the settings were made for. The dots move with
    # the pixels, so the counts stay the same. 0 (an own folder before owndata.resolve): inferred.
    scale: float = 1.0

    @property
    def own(self) -> bool:
        """A folder of the user's own images, its settings inferred (pycount.data.owndata)."""
        return self.layout == "folder"

    @property
    def input_size(self) -> int:
        """The side of the patches the nets see."""
        return self.size or self.patch

    @property
    def variant(self) -> str:
        """"" for the paper's settings; else a tag of what differs (LMDB and run folder names)."""
        base = DATASETS.get(self.name)
        ref = (base.patch, base.stride, base.rot_step, base.sigma) if base else self.defaults
        tags = []
        if ref and (self.patch, self.stride, self.rot_step) != tuple(ref[:3]):
            tags.append(f"p{self.patch}-s{self.stride}-r{self.rot_step}")
        if self.size:
            tags.append(f"{self.size}px")
        if ref and self.sigma != ref[3]:
            tags.append(f"sigma{self.sigma:g}")
        crops = (base.crop, base.crop_stride) if base else tuple(ref[4:6])
        if len(crops) == 2 and (self.crop, self.crop_stride) != crops:
            tags.append(f"crop{self.crop}-s{self.crop_stride}")
        if self.scale != (base.scale if base else (ref[6] if len(ref) > 6 else 1.0)):
            tags.append(f"x{self.scale:g}")
        if len(ref) > 7 and self.marker != ref[7]:       # MARKER= on an own folder
            tags.append("marker-" + (re.sub(r"[^A-Za-z0-9.]",
                                            lambda m: f"_{ord(m.group()):02x}", self.marker)
                                     or "all"))
        own = dict(zip(("hed_jitter", "zoom"), ref[8:10])) if not base else {}
        if self.hed_jitter != (base.hed_jitter if base else own.get("hed_jitter", 0.0)):
            tags.append(f"hed{self.hed_jitter:g}")
        if self.zoom != (base.zoom if base else own.get("zoom", 0.0)):
            tags.append(f"zoom{self.zoom:g}")
        if self.stain_norm != (base.stain_norm if base else ""):
            tags.append(self.stain_norm or "nostain")
        if self.train_n:
            tags.append(f"n{self.train_n}-seed{self.seed}")
        if self.resplit:
            tags.append(f"split{self.resplit}")
        return "-".join(tags)

    @property
    def tag(self) -> str:
        return f"{self.name}-{self.variant}" if self.variant else self.name


def _split(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The recorded split pycount/data/splits/<name>.json: (train ids, test ids)."""
    d = json.loads((SPLITS_DIR / f"{name}.json").read_text())
    return tuple(d["train"]), tuple(d["test"])


# The nets subtract a fixed per-dataset mean (BGR, as Caffe's transform_param does; measured once
# on the dataset's images) so the committed prototxts do not depend on a particular LMDB;
# `make prepare` records the measured mean in the LMDB manifest and warns when it is far off.
# Ki67's training LMDB: the patches AlexNet's 20,000 iterations of 8 read (SOLVER_BY_DATASET)
KI67_TRAIN_PATCHES = 20_000 * 8

DATASETS: dict[str, DatasetConfig] = {
    # The embedded default: SIMCEP-like fluorescence images in the VGG-cells layout, generated on
    # the fly. 100 images keep `make demo` within minutes on 2 cores; settings as the bacterial set.
    "synthetic": DatasetConfig(
        "synthetic", "vgg_cells", 40, 20, 30, *_split("synthetic"), n_val=5, subdir="synthetic",
        mean_bgr=(85.0, 0.5, 0.5), max_patch_count=40, generated="synthetic", sigma=2.0, crop_stride=32,
        description="synthetic fluorescence cells (SIMCEP-like), 100 images 256x256, seeded"),
    # VGG synthetic bacterial cells (Lempitsky & Zisserman 2010). Paper: patch 40, stride 20,
    # rotation 30.
    "bacterial": DatasetConfig(
        "bacterial", "vgg_cells", 40, 20, 30, *_split("bacterial"), n_val=10, subdir="vgg_cells",
        mean_bgr=(85.0, 0.5, 0.5), max_patch_count=40, sigma=2.0, crop_stride=32,
        description="VGG cells (bacterial), 200 images 256x256"),
    # CRCHistoPhenotypes (Sirinukunwattana et al. 2016), H&E. Paper: patch 60, stride 30, rot 30.
    # sigma 2 (issue 26, docs/density-model.md; fcrn 8,000 its, the recorded split, paired per
    # image against sigma 3's 38.60): sigma 5 45.64 (+7.04 +- 2.28), sigma 2 35.59 (-3.01 +- 1.46,
    # closer on 29 of 50), sigma 1.5 36.36 (-2.24 +- 2.24); fcrn-ctx at sigma 2 33.95 against 32.73
    # at sigma 3 (unpaired: no gain there); bench/results/2026-12-03-vm-paired-nuclei-study.md.
    # fcrn keeps its 8,000 iterations here: 16,000 at sigma 2 gave 34.86, paired -0.73 +- 1.60
    # against 8,000 (closer on 31 of 50; bench/results/2026-12-03-vm-paired-nuclei-16k.md).
    # Crops stay 96 px at stride 96: CROP=128 CROP_STRIDE=128 gave 34.67, paired -0.91 +- 1.43
    # (closer on 25 of 50; bench/results/2026-12-03-vm-paired-nuclei-crop128.md).
    # Images read at their size: SCALE=2 SIGMA=4 (fcrn-ctx, 2026-12-06) 47.84 against fcrn-ctx
    # sigma 2's 33.95, paired +13.90 +- 3.53 (closer on 13 of 50; the same 96 px crops then hold
    # a quarter of the tissue); bench/results/2026-12-06-vm-paired-nuclei-zoom-scale2.md.
    # The recorded split is not the paper's: its Table 1 (test AC 310.22, MinC-MaxC 1-1189 with
    # repeated marks counted once) fits draws such as RESPLIT=2638, 8270 and 42146
    # (bench.paper_split), where fcrn counts 39.29, 31.50 and 37.65 (35.59 here) and fcrn-ctx
    # 35.43 on the first: no easier
    # (docs/density-model.md, "The paper's test images"); the recorded split stays the headline.
    "nuclei": DatasetConfig(
        # n_val 5: 2 (48 training images, fcrn-ctx, 2026-12-06) counted 35.02 against 34.16,
        # paired +0.86 +- 2.21 (bench/results/2026-12-06-vm-paired-nuclei-ctx-nval2.md)
        "nuclei", "crc_nuclei", 60, 30, 30, *_split("nuclei"), n_val=5,
        subdir="CRCHistoPhenotypes_2016_04_28", mean_bgr=(218.5, 179.3, 211.8),
        max_patch_count=60, sigma=2.0, crop=96, crop_stride=96,
        description="CRCHistoPhenotypes nuclei (H&E), 100 images 500x500"),
    # The paper's private Ki67 set, in the generic layout (images + x,y CSVs) under
    # DATA_ROOT/ki67; split 45/10 drawn from the images found. Paper: patch 200, stride 50, rot 30.
    # ~110 GB as raw patches at these settings: stored PNG-encoded, and of the ~806,000 patches
    # cut from 40 training images x 12 rotations (85 GiB even as PNG) only the 160,000 that the
    # longest training reads (AlexNet: 20,000 iterations x batch 8) in its order are kept (17 GiB).
    "ki67": DatasetConfig(
        "ki67", "generic", 200, 50, 30, (), (), n_val=5, subdir="ki67",
        mean_bgr=(200.0, 200.0, 210.0), max_patch_count=200, encoded=True, sigma=4.0, crop=192,
        crop_stride=384, train_patches=KI67_TRAIN_PATCHES,
        description="Ki67 IHC, 55 images 1920x2560 (private: bring your own)"),
    # A generated stand-in for it: IHC-like 1920x2560 images with 70-4808 cells each.
    "ki67-synthetic": DatasetConfig(
        "ki67-synthetic", "generic", 200, 50, 30, *_split("ki67-synthetic"), n_val=5,
        subdir="ki67-synthetic", mean_bgr=(200.0, 200.0, 210.0), max_patch_count=200,
        generated="ki67", encoded=True, sigma=4.0, crop=192, crop_stride=384,
        train_patches=KI67_TRAIN_PATCHES,
        description="synthetic Ki67-like IHC, 55 images 1920x2560, seeded"),
}

# Training writes a log line (loss, lr, seconds) every DISPLAY_INTERVAL iterations, and at every
# validation and snapshot
DISPLAY_INTERVAL = 20
# ... and a snapshot, besides every `snapshot` iterations, once this many seconds have passed
# since its last one: a training killed without warning (SIGKILL, a machine taken away) loses at
# most ~this much work. (An AlexNet on 60 px patches takes ~6 s per iteration on one CPU thread:
# its 1,000-iteration interval is 1.7 h.) A snapshot of the full AlexNet costs ~1 s and ~0.5 GB.
SNAPSHOT_SECONDS = 600
# The validation that picks the kept weights reads at most this many of the held-out images'
# patches (patch regressors) or crops (density models): a bound on its memory (20,000 RGB 60 px
# patches are 216 MB) and on the time each validation takes, not a sample. The sets here hold
# fewer: patches 1,440 (bacterial), 1,280 (nuclei), 8,820 (ki67-synthetic); nuclei crops 180
VAL_PATCH_LIMIT = 20_000
VAL_CROP_LIMIT = 4_000

# `pycount count` marks an image "suspect" when its count is below this: no image holds fewer
# than no cells, but an empty field's count is noise around 0 (-0.7 on an empty VGG-like field,
# -0.0001 on a 1x1 image, through the bacterial fcrn); a whole cell below 0 means the net is lost
SUSPECT_BELOW = -1.0
# ... and when its count is above SUSPECT_DENSITY x max_patch_count cells per patch area over the
# whole image (at least one patch: a smaller one is counted padded): far more cells to the pixel
# than the training images hold (max_patch_count is about twice the densest patch of a named
# set, and twice the densest own image's mean + 10 for an own folder, which a crop of the dense
# part of large sparse slides may exceed: hence the factor). An RGB image counted by a run
# trained on grey ones read 136,304 cells on 640x480 px (14 marked: 23 times this limit); the
# densest images of the named sets stay 10-16 times below it (nuclei's 1,189 cells in 500 x 500
# px against 12,500; bacterial's ~300 in 256 x 256 px against 4,915)
SUSPECT_DENSITY = 3.0
# ... and, for a run on an own folder, when it is grey and the folder's training images were
# colour, or the other way round (a grey-trained run read an H&E image of 135 cells as 11.8): an
# image is grey where its channels differ (|R-G| + |G-B|, averaged) by at most GREY_TOLERANCE of
# its mean brightness, the training images where the mean colour the nets subtract (theirs) does
# so; relative, so that sparse coloured nuclei on a black field stay colour (a training mean of
# (1.5, 1.0, 1.2) is colour; a grey image's JPEG chroma noise stays within it)
GREY_TOLERANCE = 0.05
# ... each of these messages adds how far the run was trained where it stopped short of half its
# model's schedule (ITERS=60 of fcrn's 8,000 counted a training image as -54 cells)
SHORT_TRAINING = 0.5

# Shared convolutions (`pycount count --shared`, pycount.inference.shared): every image is checked
# by sending SHARED_CHECK_WINDOWS spread windows through the per-window net as well; where the
# shared counts of that sample differ by more than SHARED_TOLERANCE (relative) the image is
# counted per window instead (make bench-eval measured 45 % on the synthetic set's alexnet-lite).
# Images with a side above SHARED_MAX_SIDE px are refused (the trunk's feature map is held
# whole); with pycaffe, images above SHARED_CAFFE_MAX_PIXELS input pixels are counted per window,
# as pycaffe keeps every blob of the net (a 1920x2560 image through ResNet-50 took over 21 GB;
# cv2.dnn reuses its buffers)
SHARED_CHECK_WINDOWS = 16
SHARED_TOLERANCE = 0.01
SHARED_MAX_SIDE = 4096
SHARED_CAFFE_MAX_PIXELS = 1.5e6
# The percentiles of an image's values taken as its black and white when an image deeper than 8
# bits is stretched to 8 (images.to_uint8): a few hot pixels or a 12-bit camera in a 16-bit
# container do not leave it dark. An own folder's depth_range spans its training images'
# (owndata.resolve), so one mapping serves them all: a per-image stretch made an empty 16-bit
# fluorescence field near-white noise, counted as 1,233 cells by a bacterial fcrn (-0.7 as 8-bit).
DEPTH_PERCENTILES = (0.1, 99.9)
# An image with more than this share of its raw values outside its dataset's depth_range (a
# training image has at most 0.2 %) comes from another camera, bit depth or exposure: reading it
# clips it to black or white. `count` marks it suspect, prepare and eval name it.
DEPTH_OUTSIDE_WARN = 0.25

# The audit calls a paper cell reproduced when our MAE is within this fraction of the paper's
AUDIT_TOLERANCE = 0.15
# Every evaluated run behind the audit is also recorded here (its metrics and training facts, a
# few kB), committed with docs/audit.md: run folders live on one machine and are lost with it,
# and a cell that cost CPU hours must not fall back to "missing" on the next machine
AUDIT_RECORD = ROOT / "docs" / "audit" / "results.json"
# What was tried for each paper cell outside the tolerance (one entry per run, kept by hand with
# the measurements it cites); `make audit` prints it under "Cells outside ..."
AUDIT_TRIED = ROOT / "docs" / "audit" / "tried.toml"
# Settings a density study kept as helping beyond split noise without becoming the dataset's
# default: the audit's density table gives each model's runs at them rows of their own (per
# image, and over splits where RESPLIT= runs at them exist). Nuclei: ZOOM=0.1, the study's closest
# step: -1.73 per image over five splits for fcrn-ctx, lower on 4 of 5, 1.5 standard errors with
# each image counted once (DatasetConfig.zoom)
AUDIT_DENSITY_VARIANTS = {"nuclei": ({"zoom": 0.1},)}

# The dataset whose nets are committed under prototxt/ (pycount.nets.builders.committed_plans)
REFERENCE_DATASET = "bacterial"

SYNTHETIC_IMAGES = 100
KI67_SYNTHETIC_IMAGES = 55
SYNTHETIC_SEED = 0

# The seed of every split pycount draws itself (the sets without a recorded split, own folders,
# the validation images taken from the training ones, the order of the patches in an LMDB):
# changing it changes every such split, and so every run trained on one
SPLIT_SEED = 2016
# ... and the share of a set's images it draws as test images where no split is recorded (an own
# folder without train/ + test/ or a pycount.toml `test` list, ki67): 10 in 55, the paper's Ki67
# split (45 training images, 10 test)
TEST_SHARE = 10 / 55
# `make prepare` warns when the mean B, G or R of the training patches lies further than this
# from the mean the nets subtract (a named set's config, an own folder's inferred or set
# mean_rgb): the wrong images, or a stain unlike the set's
MEAN_BGR_WARN = 25
# The version of what prepare writes into an LMDB (patches, crops, density targets) beyond the
# settings its fingerprint holds: raise it in the commit that changes how they are cut or
# computed, and every LMDB written before is then found out of date and written again, where it
# would otherwise be reused as current. At 1 it adds nothing to the fingerprint (the LMDBs
# written so far stay current).
LMDB_FORMAT = 1


# The settings a run records in its train.json and with_overrides takes back (pycount.inference.run),
# each with the Make variable that sets it (the name messages give)
MAKE_VARS = {"patch": "PATCH", "stride": "STRIDE", "rot_step": "ROT", "size": "SIZE",
             "train_n": "TRAIN_N", "seed": "SEED", "sigma": "SIGMA", "hed_jitter": "HED",
             "zoom": "ZOOM", "resplit": "RESPLIT", "crop": "CROP", "crop_stride": "CROP_STRIDE",
             "stain_norm": "STAIN", "scale": "SCALE", "marker": "MARKER"}
OVERRIDES = tuple(MAKE_VARS)
# STAIN= values (pycount.data.stain) and the length of the target each records in a run
STAIN_METHODS = {"reinhard": 6, "macenko": 8}
# Macenko et al. (2009)'s constants, as they published them: a pixel is stained when its optical
# density exceeds 0.15 in every channel; the stain colours are the 1st and 99th percentile
# angles in the stained pixels' plane; the amounts are scaled by their 99th percentile. An image
# with fewer stained pixels than MACENKO_MIN_PIXELS is left as it is.
MACENKO_OD_MIN = 0.15
MACENKO_ANGLE_PERCENTILE = 1.0
MACENKO_MAX_PERCENTILE = 99.0
MACENKO_MIN_PIXELS = 100


def _named(var: str, given, what: str, value: float) -> str:
    """A setting in a message: `VAR=value` where the command line gave it, else the dataset's
    own (`nuclei's stride of 30 px`)."""
    return f"{var}={value:g}" if given is not None else f"{what} of {value:g} px"


def stride_gap(stride: int, patch: int) -> str:
    """Why a window stride larger than its patch is refused, and the fix (with_overrides for the
    named sets, owndata.resolve for an own folder's inferred patch)."""
    return (f"the windows would skip a {stride - patch} px band after each one, which training "
            f"never sees and counting never counts; use a stride of at most the patch (the paper "
            f"used half of it or less: {max(1, patch // 2)} px here)")


def sigma_max(crop: int) -> float:
    """The widest density target training crops of `crop` px take (SIGMA_MAX_PER_CROP)."""
    return crop * SIGMA_MAX_PER_CROP


def zoom_too_wide(zoom: str, sigma: str, widened: float, crop: str, side: int) -> str:
    """The refusal of a zoom whose enlarged crops widen a sigma beyond sigma_max: `zoom`, `sigma`
    and `crop` say where each was set (a named set's, pycount.toml's, the command line's)."""
    return (f"{zoom} widens {sigma} to {widened:g} px in its enlarged crops, too wide for "
            f"{crop}: {sigma_too_wide(widened, side, 'zoom or sigma')}")


def sigma_too_wide(sigma: float, crop: int, smaller: str = "sigma") -> str:
    """Why a sigma beyond sigma_max(crop) is refused, and the fix."""
    need = math.ceil(sigma / SIGMA_MAX_PER_CROP / 8) * 8
    larger = (f", or a crop of at least {need} px" if need <= WINDOW_LIMITS[1] else
              f" (at most {sigma_max(WINDOW_LIMITS[1]):g} px even at the largest crop, "
              f"{WINDOW_LIMITS[1]} px)")
    return (f"the width may be at most a quarter of the crop side, {sigma_max(crop):g} px (each "
            f"dot's Gaussian reaches 4 sigma, so a wider one spans more than twice the crop and "
            f"is all but flat over it); use a smaller {smaller}{larger}")


def _rotation_needed(ds: DatasetConfig, said: str, drop: str, rot_given: bool) -> str:
    """The refusal of an augmentation of the rotated crops (ZOOM=, HED=) where none are cut."""
    rot = "ROT=0" if rot_given else f"rot_step = 0 in {Path(ds.subdir) / SPEC_FILE}"
    return (f"{said} augments the mirrored and rotated training crops, and with {rot} training "
            f"takes the crops as they are: {drop} or give a rotation step (ROT=30, the paper's)")


def own_setting(ds: DatasetConfig, key: str) -> str:
    """A float setting the dataset itself holds (not the command line), for a message:
    "<folder>/pycount.toml's zoom = 0.25", or a named dataset's "nuclei's ZOOM=0.25"."""
    return (f"{Path(ds.subdir) / SPEC_FILE}'s {key} = {getattr(ds, key):g}" if ds.own else
            f"{ds.name}'s {MAKE_VARS[key]}={getattr(ds, key):g}")


def check_augmented_rotation(ds: DatasetConfig) -> None:
    """A density model's training crops with a zoom or stain jitter that a pycount.toml sets and
    ROT=0 turns off: refused (with_overrides refuses ZOOM= and HED= given with ROT=0 alike)."""
    for k in ("zoom", "hed_jitter"):
        if getattr(ds, k) > 0 and ds.rot_step == 0:     # (an own folder's OWN_INFERRED: not set)
            raise ConfigError(_rotation_needed(ds, own_setting(ds, k),
                                               f"set {MAKE_VARS[k]}=0", True))


def _zoom_said(ds: DatasetConfig, zoom: float | None) -> str:
    """The zoom in force, as where it was set: ZOOM= given, else the dataset's own."""
    return f"ZOOM={zoom:g}" if zoom is not None else own_setting(ds, "zoom")


def with_overrides(ds: DatasetConfig, patch: int | None = None, stride: int | None = None,
                   rot_step: int | None = None, size: int | None = None,
                   train_n: int | None = None, seed: int | None = None,
                   sigma: float | None = None, hed_jitter: float | None = None,
                   resplit: int | None = None, crop: int | None = None,
                   crop_stride: int | None = None, stain_norm: str | None = None,
                   scale: float | None = None, marker: str | None = None,
                   zoom: float | None = None) -> DatasetConfig:
    """The dataset with PATCH=, STRIDE=, ROT=, SIZE=, TRAIN_N=, SEED=, SIGMA=, HED=, ZOOM=, RESPLIT=,
    CROP=, CROP_STRIDE=, STAIN=, SCALE=, MARKER= applied (None: keep the default)."""
    if marker is not None:
        if not ds.own:
            raise ConfigError(f"MARKER={marker}: {ds.name} has no marker types to choose from; "
                              f"MARKER= picks the Cell Counter type or QuPath class that an own "
                              f"folder's annotations count")
        ds = replace(ds, marker="" if marker.strip().lower() in ("", "all") else marker.strip())
    if stain_norm is not None:
        stain_norm = "" if stain_norm in ("", "none") else stain_norm
        if stain_norm and stain_norm not in STAIN_METHODS:
            raise ConfigError(f"STAIN={stain_norm} is not valid: use one of "
                              f"{', '.join(STAIN_METHODS)}, or none")
        if stain_norm != ds.stain_norm:
            ds = replace(ds, stain_norm=stain_norm, stain_ref=())
    changes = {k: v for k, v in dict(patch=patch, stride=stride, rot_step=rot_step,
                                     size=size, train_n=train_n, seed=seed, sigma=sigma,
                                     hed_jitter=hed_jitter, resplit=resplit, crop=crop,
                                     crop_stride=crop_stride, scale=scale, zoom=zoom).items()
               if v is not None}
    # the float options first: nan passes no range test written as `v < lo` and inf none written
    # as `v <= 0` (SIGMA=nan and SIGMA=inf went on to tracebacks in drawing the targets)
    for k, what in (("sigma", "width in pixels, e.g. 2"), ("hed_jitter", "strength, e.g. 0.05"),
                    ("scale", "factor, e.g. 0.5"), ("zoom", "range, e.g. 0.25")):
        if k in changes and not math.isfinite(changes[k]):
            raise ConfigError(f"{MAKE_VARS[k]}={changes[k]} is not valid: give a finite {what}")
    if scale is not None and not SCALE_LIMITS[0] <= scale <= SCALE_LIMITS[1]:
        raise ConfigError(f"SCALE={scale} is not valid: use a factor from {SCALE_LIMITS[0]:g} to "
                          f"{SCALE_LIMITS[1]:g} (0.5 halves every image's sides, 1 reads them as "
                          f"they are)")
    if crop is not None and (crop <= 0 or crop % 8):
        raise ConfigError(f"CROP={crop} is not valid: the density nets pool three times, so use "
                          f"a positive multiple of 8 (e.g. {max(8, round((crop or 8) / 8) * 8)})")
    if resplit and not len(ds.test_ids):
        raise ConfigError(f"RESPLIT={resplit}: {ds.name} has no recorded split to draw again "
                          f"(its split is already a seeded draw over the images found)")
    if sigma is not None and sigma < SIGMA_MIN:
        raise ConfigError(f"SIGMA={sigma:g} is not valid: use a width of at least {SIGMA_MIN:g} "
                          f"px (a narrower Gaussian is a single pixel's dot; the named sets use "
                          f"2 to 4)")
    if hed_jitter is not None and not 0 <= hed_jitter < 1:
        raise ConfigError(f"HED={hed_jitter} is not valid: use a strength in [0, 1), e.g. 0.05")
    if zoom is not None and not (zoom == 0 or ZOOM_LIMITS[0] <= zoom <= ZOOM_LIMITS[1]):
        raise ConfigError(f"ZOOM={zoom:g} is not valid: use a range from {ZOOM_LIMITS[0]:g} to "
                          f"{ZOOM_LIMITS[1]:g}, e.g. 0.25 (crops also cut from each training image "
                          f"at 1/1.25 and 1.25 times its size), or 0 for none")
    for k, var in (("zoom", "ZOOM"), ("hed_jitter", "HED")):
        # given here; a pycount.toml's zoom beside ROT=0 is for density models only to refuse
        # (check_augmented_rotation, once the model is known)
        if changes.get(k) and changes.get("rot_step", ds.rot_step) == 0:
            raise ConfigError(_rotation_needed(ds, f"{var}={changes[k]:g}", f"drop {var}=",
                                               "rot_step" in changes))
    if rot_step is not None and not 0 <= rot_step < ROT_STEP_BELOW:
        raise ConfigError(f"ROT={rot_step} is not valid: use a rotation step in degrees from 1 "
                          f"to {ROT_STEP_BELOW - 1} (the paper's 30), or 0 for none")
    for k, v in changes.items():
        if k in ("seed", "resplit", "train_n") and v < 0:
            raise ConfigError(f"{MAKE_VARS[k]}={v} is not valid: use a whole number, 0 or more")
        if v < 0 or (k in ("patch", "stride", "crop_stride") and v == 0):
            raise ConfigError(f"{MAKE_VARS[k]}={v} is not valid: use a positive number of pixels")
    lo, hi = WINDOW_LIMITS
    if size and not lo <= size <= hi:
        within = (f"at least {lo} px (a patch resized to {size} px holds no cell" if size < lo
                  else f"at most {hi} px (beyond it the nets' weights and batches outgrow the "
                       f"memory")
        raise ConfigError(f"SIZE={size} is not valid: resize patches to {within}; the paper's "
                          f"nets take 224 or 227), or 0 for their native size")
    if patch is not None and patch < lo and not ds.own:   # own: owndata._check_windows
        raise ConfigError(f"PATCH={patch} is not valid: a patch needs at least "
                          f"{lo} px (a patch of {patch} px holds no cell)")
    for k, v in (("patch", patch), ("crop", crop)):
        if v is not None and v > hi and not ds.own:       # own: owndata._check_windows
            raise ConfigError(f"{MAKE_VARS[k]}={v} is not valid: use a {k} of at most {hi} px "
                              f"(beyond it the nets' weights and batches outgrow the memory; "
                              f"{ds.name}'s is {getattr(ds, k)} px)")
    its = f"{ds.name}'s"
    if not ds.own and (patch is not None or stride is not None):    # own: owndata.resolve
        p, st = changes.get("patch", ds.patch), changes.get("stride", ds.stride)
        if st > p:
            raise ConfigError(f"{_named('STRIDE', stride, its + ' stride', st)} is larger than "
                              f"{_named('PATCH', patch, its + ' patch', p)}: {stride_gap(st, p)}")
    if not ds.own and (sigma is not None or crop is not None):      # own: owndata.resolve
        sg, c = changes.get("sigma", ds.sigma), changes.get("crop", ds.crop)
        if sg > sigma_max(c):
            raise ConfigError(f"{_named('SIGMA', sigma, its + ' sigma', sg)} is too wide for "
                              f"{_named('CROP', crop, its + ' crop', c)}: {sigma_too_wide(sg, c)}")
    z = changes.get("zoom", ds.zoom)     # ZOOM=, a pycount.toml's zoom or the dataset's own
    # the Gaussians of the shrunken and the enlarged crops, where the command line changed the
    # zoom or a width (read_spec checks a pycount.toml's pair)
    if z and (zoom is not None or sigma is not None or crop is not None):
        sg, c = changes.get("sigma", ds.sigma), changes.get("crop", ds.crop)   # (own: sg 0)
        if sg and sg / (1 + z) < SIGMA_MIN:
            raise ConfigError(f"{_zoom_said(ds, zoom)} narrows the sigma of {sg:g} px to "
                              f"{sg / (1 + z):g} px in its shrunken crops, below "
                              f"{SIGMA_MIN:g} px: use a smaller zoom or a larger SIGMA=")
        if not ds.own and sg * (1 + z) > sigma_max(c):  # own: owndata.resolve, once inferred
            raise ConfigError(zoom_too_wide(
                _zoom_said(ds, zoom), _named("SIGMA", sigma, its + " sigma", sg),
                sg * (1 + z), _named("CROP", crop, its + " crop", c), c))
    if changes.get("train_n") and len(ds.train_ids) and changes["train_n"] > len(ds.train_ids):
        raise ConfigError(f"TRAIN_N={changes['train_n']}: {ds.name} has only "
                          f"{len(ds.train_ids)} training images")
    if patch and ds.max_patch_count and not ds.own and patch != ds.patch:
        # the C head's classes grow with the patch's area (bacterial's 40 classes at 40 px
        # would be 360 at 120 px); owndata infers an own folder's from its own patch
        changes["max_patch_count"] = math.ceil(ds.max_patch_count * (patch / ds.patch) ** 2)
    return replace(ds, **changes)


@dataclass(frozen=True)
class SolverConfig:
    base_lr: float
    batch: int
    max_iter: int
    lr_policy: str = "step"
    gamma: float = 0.1
    stepsize: int = 0          # 0: two thirds of max_iter
    momentum: float = 0.9
    weight_decay: float = 5e-4
    test_interval: int = 500   # validation MAE on held-out images' patches
    snapshot: int = 500
    type: str = "SGD"          # Caffe solver type: SGD, Adam, ...
    clip_gradients: float = 0  # L2 norm cap on the whole gradient (0: off)
    power: float = 1.0         # lr_policy "poly": base_lr * (1 - iter / max_iter) ^ power
    stepvalues: tuple[int, ...] = ()  # lr_policy "multistep": x gamma at each of these iterations
    average_after: int = 0     # > 0: the weights kept are the mean of those after this iteration
    #                            (pycount.training.averaging); 0: the solver's own last weights

    def lr_at(self, it: int, max_iter: int) -> float:
        """The learning rate Caffe uses at iteration `it` (step, multistep and poly policies)."""
        if self.lr_policy == "poly":
            return self.base_lr * (1 - it / max_iter) ** self.power
        if self.lr_policy == "multistep":
            return self.base_lr * self.gamma ** sum(it >= v for v in self.stepvalues)
        return self.base_lr * self.gamma ** (it // (self.stepsize or (2 * max_iter) // 3))

    def stretched(self, max_iter: int) -> "SolverConfig":
        """This schedule for a run of max_iter iterations (ITERS=): the steps and the start of
        weight averaging move in proportion."""
        if max_iter == self.max_iter:
            return self
        f = max_iter / self.max_iter
        return replace(self, max_iter=max_iter, stepsize=round(self.stepsize * f),
                       stepvalues=tuple(round(v * f) for v in self.stepvalues),
                       average_after=round(self.average_after * f))


FCRN_DECODERS = ("up-conv", "conv-up")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    family: str                # net builder in pycount.nets: "alexnet" or "resnet"
    width: float = 1.0         # AlexNet: channel multiplier (1.0 = the published widths)
    fc: int = 4096             # AlexNet: width of the two hidden fully connected layers
    dropout: float = 0.5       # AlexNet: after fc6 and fc7 (bvlc_alexnet: 0.5)
    depth: int = 0             # ResNet: 50, 101 or 152
    weights: str = ""          # ImageNet caffemodel under weights/ (see weights/README.md)
    finetune: str = "scratch"  # "scratch": all layers trained from random init;
    #                            "head": pretrained trunk frozen (lr_mult 0, BatchNorm global
    #                            stats), only the new head trains (the paper's ResNets);
    #                            "all": pretrained trunk fine-tuned too (FINETUNE=all)
    solver: SolverConfig = field(default_factory=lambda: SolverConfig(0.001, 64, 20000))
    description: str = ""
    widths: tuple[int, ...] = ()  # FCRN: channels per resolution level, full resolution first
    keep: str = "best"         # model.caffemodel: the weights with the "best" validation MAE, or
    #                            the "last" ones (no held-out image then picks the weights)
    tta: int = 1               # density models at test time: how many of the image's flips and
    #                            quarter turns it is counted under (TTA_TRANSFORMS), the
    #                            densities turned back and averaged: 1, 4 or 8
    convs: int = 1             # FCRN: 3x3 convolutions per encoder level
    decoder: str = "up-conv"   # FCRN: each decoder step upsamples then convolves ("up-conv"), or
    #                            convolves at the coarser level then upsamples ("conv-up": 1/4 of
    #                            the multiply-adds, since the 3x3 runs on a quarter of the pixels)
    context: int = 0           # FCRN: px of unsupervised image context around each training
    #                            crop (the loss sees only the central crop x crop; beyond the
    #                            image the context is its mean colour), and then whole images are
    #                            counted in one pass, padded by as much (0: crops in the padding
    #                            regime of training, pycount.inference.fullconv)

    def __post_init__(self):
        if self.decoder not in FCRN_DECODERS:
            raise ConfigError(f"{self.name}: unknown decoder {self.decoder!r} "
                              f"(use {' or '.join(FCRN_DECODERS)})")

    @property
    def classic(self) -> bool:
        """One of Table 4's pre-CNN methods (pycount.classic): no Caffe net, no LMDB."""
        return self.family in CLASSIC_FAMILIES

    @property
    def density(self) -> bool:
        """A fully convolutional density model (per-pixel output) instead of a patch counter."""
        return self.family == "fcrn"

    @property
    def mean_bgr(self) -> tuple[float, float, float] | None:
        """ImageNet models keep the mean they were trained with; None: the dataset's mean."""
        return IMAGENET_MEAN_BGR if self.family == "resnet" else None

    @property
    def input_scale(self) -> float:
        """Pixel scale after mean subtraction: He's ResNets take raw 0-255 values."""
        return 1.0 if self.family == "resnet" else 1.0 / 64


# The per-channel mean of He et al.'s released ResNets (BGR), as their deploy models subtract it.
IMAGENET_MEAN_BGR = (104.0, 117.0, 123.0)


# Test-time augmentation of a density model (ModelConfig.tta, TTA=): the transforms of the image
# (mirror: a left-right flip first; then k quarter turns) whose densities, turned back, are
# averaged. 8 is all of them; 4 the image's four quarter turns, a subgroup, so that the count is
# exactly invariant to its own transforms. Measured on bacterial fcrn (100 test images, 2 threads;
# bench/results/2026-12-04-vm-fcrn-tta.md, `python -m bench.fcrn_tta`): against all 8, the 4 turns
# moved no image's count by more than 0.36 % (mean 0.10 %), test MAE 2.189 against 2.188, in half
# the time (0.35 s per 256 px image against 0.69 s); the 4 flips (none, left-right, up-down, both)
# 0.57 %; {none, half turn, the 2 diagonal flips} 0.30 % (MAE 2.196); 1 pass 0.89 %. On nuclei fcrn
# (50 test images; bench/results/2026-12-04-vm-fcrn-tta-2.md) the turns disagree more: the 4 turns
# moved one dense image by 2.1 % (7 of 339 cells; mean 0.35 %) and the test MAE from 35.59 to 36.10,
# the other two groups by up to 2.8 and 3.5 %. So fcrn keeps 8 (TTA=4 halves the time where that
# is worth ~0.4 % per image).
TTA_TRANSFORMS = {
    1: ((False, 0),),
    4: ((False, 0), (False, 1), (False, 2), (False, 3)),
    8: tuple((m, k) for m in (False, True) for k in range(4)),
}
# Augmentation beyond the paper's rotations (its Sect. 2.2 names only those): Caffe's random
# mirror of each training patch (transform_param mirror) for the patch nets trained whole
# (AlexNet, a ResNet with FINETUNE=all); a mirrored patch holds the same count. Not with a frozen
# trunk, whose features are computed once per patch and cached (pycount.training.features).
# False trains on the rotations alone, as the paper describes.
TRAIN_MIRROR = True
# Solver choices (the paper states none): plain SGD with momentum 0.9, a step decay x0.1 at two
# thirds of the run, and the gradient's L2 norm clipped at 10, which keeps from-scratch training
# with the Euclidean loss from diverging in its first iterations. Small batches (16) reached a lower
# validation MAE per CPU second than batches of 64 in our runs on the synthetic set.
MODELS: dict[str, ModelConfig] = {
    # bvlc_alexnet's shape (5 conv with LRN and groups, fc6/fc7 4096 with dropout 0.5), trained
    # from scratch as in the paper. Input: the native patches (40 px bacterial, 60 px nuclei) with
    # conv1 5x5 stride 1 in place of 11x11 stride 4 (nets.alexnet_adaptation; from 128 px, as
    # Ki67's 200, bvlc's own conv1). Why: the paper cuts patches "to avoid resizing ... which
    # could cause information loss" (its Sect. 2.2) and mentions no resize; 11x11 stride 4 would
    # leave a 40 px patch 8x8 before the first of three poolings; and a patch enlarged to 227 px
    # holds nothing more while costing 32x the pixels per step (the 4 CPU cells: weeks, not
    # days). SIZE=227 trains the resized reading for comparison.
    "alexnet": ModelConfig(
        name="alexnet", family="alexnet", width=1.0, fc=4096, dropout=0.5,
        solver=SolverConfig(base_lr=0.001, batch=32, max_iter=20000, test_interval=1000,
                            snapshot=1000, clip_gradients=10),
        description="AlexNet (bvlc_alexnet widths), strides adapted to small patches"),
    # The same topology at a quarter of the widths, fc 256, no dropout (which slowed its
    # convergence 3x here): what `make demo` trains on 2 CPU cores in about 5 minutes.
    # Not a model of the paper.
    "alexnet-lite": ModelConfig(
        name="alexnet-lite", family="alexnet", width=0.25, fc=256, dropout=0.0,
        solver=SolverConfig(base_lr=0.001, batch=16, max_iter=2400, test_interval=400,
                            snapshot=400, clip_gradients=10),
        description="AlexNet topology at 1/4 width, fc 256, no dropout: the demo model"),
}
# Density models (issue #7; not in the paper): an FCRN-A-style fully convolutional encoder-decoder
# (Xie, Noble & Zisserman 2016) predicting a per-pixel density whose sum is the count. Four
# resolution levels, each two 3x3 convolutions + ReLU (full, 1/2, 1/4, 1/8: max-pool between
# them); each decoder step is a 3x3 convolution at the coarser level, a fixed bilinear x2
# Deconvolution, and the sum with the encoder's map of that resolution (a U-Net-like skip, summed
# rather than concatenated); a 1x1 convolution gives the density. Receptive field 116 px. Adam,
# since the per-pixel Euclidean loss is summed over the crop and its scale varies with the
# dataset's density. Widths: FCRN-A's 32-64-128-512 cost ~8x these per pixel; 16-32-64-128 trains
# on 2 CPU cores in minutes. Convolving before upsampling runs the decoder's 3x3s on a quarter of
# the pixels (the net's forward-backward 284 -> 125 ms per batch of 16 64 px crops, one core);
# that paid for the second convolution per level (230 ms) and 2,000 iterations instead of 1,500.
# Bacterial N = 32, the same two draws: one conv per level, up-then-conv, 1,500 its: 3.50, 3.23;
# conv-then-up 3,000 its: 3.32, 2.83; two convs, conv-then-up, 2,000 its (this layout): 2.96, 2.87.
# 8,000 iterations (3.2 passes over bacterial N = 50's crops): the net was undertrained at 2,000 and
# 4,000 (N = 50 seed 1: 3.14, 2.57, 2.12 at 8,000). Schedule: lr 1e-3, 1e-4 from iteration 5332,
# 1e-5 from 6932, and the weights kept are the mean of those after 6932 (Polyak averaging). A count
# sums every pixel of the map, so the random walk Adam's last steps leave in the weights shows as a
# per-run bias of whole cells per image; on the bacterial set (N = 32, paired runs) averaging cut
# the test MAE from 4.73 to 3.31 (seed 4) and the third step from 3.95 to 3.64 (seed 1); see
# docs/density-model.md. Counting averages the density over the 8 flips and quarter turns of the image
# (tta=8; TTA=1 is 8x faster): on two runs, MAE 3.42 -> 3.27 and 3.31 -> 3.22.
MODELS["fcrn"] = ModelConfig(
    name="fcrn", family="fcrn", widths=(16, 32, 64, 128), convs=2, decoder="conv-up",
    keep="last", tta=8,
    solver=SolverConfig(base_lr=0.001, batch=16, max_iter=8000, lr_policy="multistep",
                        gamma=0.1, stepvalues=(5332, 6932), average_after=6932, momentum=0.9,
                        weight_decay=1e-5, test_interval=250, snapshot=250, type="Adam"),
    description="FCRN-A-style density net (16-32-64-128 x2 convs, conv then bilinear up, skip "
                "sums): count = sum")
# The same net trained for counting whole images in one pass (issue #22): each 64 px training crop
# is cut with 32 px of context on every side (a 128 px input; beyond the image its mean colour),
# and the loss sees only the central 64 px, whose pixels then never meet the zero padding of the
# crop's edge within 32 px. Counting runs the whole image at once, padded by 32 px of the mean
# colour, which is the regime of training (fcrn instead averages ~400 crop forwards per 256 px image).
# Measured (docs/density-model.md): one pass within 0.15 % of its crops-with-context counts, 0.25 s
# per 256 px image at one thread (fcrn 0.86 s); bacterial 2,000 its test MAE 3.00 (fcrn 2.72, paired
# +0.28 +- 0.20); nuclei 8,000 its 32.73 (fcrn 38.84, paired -6.11 +- 1.81, better on 33 of 50);
# bacterial 8,000 its (2026-12-04) 1.97 against fcrn's 2.19, paired -0.21 +- 0.15 (noise), 0.30 s
# per 256 px image at two threads (fcrn 0.69-0.76 s), 0.15 s with TTA=4 (counts within 0.38 %);
# with Caffe's pooling patch 07, 0.228 s with all 8 transforms at two threads (0.271 s without it,
# the same counts; docs/caffe-speed.md); the N = 50 protocol 1.95 +- 0.12 over 5 seeds (fcrn 2.11 +-
# 0.04 on the same draws, lower on each).
MODELS["fcrn-ctx"] = replace(
    MODELS["fcrn"], name="fcrn-ctx", context=32,
    description="fcrn trained with 32 px of unsupervised context around each crop; counts whole "
                "images in one pass")
# A study model of issue 26 (nuclei): fcrn-ctx with a fifth resolution level (256 channels at 1/16
# of the pixels), which widens the receptive field from 116 to 236 px (the tissue around a
# nucleus: gland, stroma, blood) for ~25 % more multiply-adds; training inputs (crop + 2 x
# context) must then be multiples of 16. Measured 2026-12-04 (nuclei, sigma 2, 8,000 its, 4,186 s):
# 32.78 +- 28.26, MRE 0.193, against fcrn 35.59 paired -2.8 +- 2.68 (closer on 26 of 50) and
# fcrn-ctx's 32.73 (sigma 3) / 33.95 (sigma 2), unpaired: the wider view gains nothing measurable.
# With ZOOM=0.1 (2026-12-06, 8,097 s at one thread): 31.01 +- 27.28 against fcrn-ctx ZOOM=0.1's
# 30.65, paired +0.35 +- 2.42 (closer on 24 of 50). Kept as a study model only
# (docs/density-model.md).
MODELS["fcrn-ctx5"] = replace(
    MODELS["fcrn-ctx"], name="fcrn-ctx5", widths=(16, 32, 64, 128, 256),
    description="fcrn-ctx with a fifth level (16-...-256): receptive field 236 px")
# A study model of issue 26 (nuclei): fcrn-ctx at 1.5x the channels (24-48-96-192, ~2.25x the
# multiply-adds). The nets fit their own nuclei training images no better than ~18-21 cells
# (bench/train_fit.py), above the paper's test MAE: capacity is what this one asks about.
# Measured 2026-12-05 (recorded split, sigma 2, 8,000 its, 7,177 s at two threads): it fits its
# training images to 9.5 +- 8.9 cells and its 5 monitor images to 16.1 (best validation patch MAE
# 1.46 against fcrn-ctx's 1.64), but counts the test images no better: 33.85 +- 26.92, MRE
# 0.152, against fcrn-ctx's 33.95 paired -0.10 +- 3.88 (closer on 24 of 50). Capacity was a limit
# on fitting the marks, not on the test count. Kept as a study model only (docs/density-model.md).
MODELS["fcrn-ctx-wide"] = replace(
    MODELS["fcrn-ctx"], name="fcrn-ctx-wide", widths=(24, 48, 96, 192),
    description="fcrn-ctx at 1.5x the channels (24-48-96-192)")
# A study model of issue 26 (nuclei): fcrn-ctx with 50x the weight decay (5e-4, bvlc_alexnet's,
# against fcrn's 1e-5; Caffe's Adam adds it to the gradient). The ZOOM=0.1 run counts its own
# training images with MAE 14.2 and the test images with 30.65: a generalisation gap, which a
# stronger penalty on the weights may narrow. Measured 2026-12-06 (recorded split, sigma 2, 8,000
# its, 4,366 s at one thread beside another training): 31.04 +- 26.69, MRE 0.141, against
# fcrn-ctx sigma 2's 33.95 paired -2.91 +- 2.84 (closer on 29 of 50): within the noise; its own
# 45 training images 14.67 (bench.train_fit), so it fits them no worse: at Adam's scale the
# penalty does not regularise. Kept as a study model only (docs/density-model.md).
MODELS["fcrn-ctx-wd"] = replace(
    MODELS["fcrn-ctx"], name="fcrn-ctx-wd",
    solver=replace(MODELS["fcrn-ctx"].solver, weight_decay=5e-4),
    description="fcrn-ctx with weight decay 5e-4 (fcrn: 1e-5)")
# Table 4's comparison methods, re-implemented as estimators (pycount.classic); they read the
# images directly and train in minutes on a CPU. Their settings' defaults and the reason for each
# are in pycount/classic/{lecount,ledetect}.py; CLASSIC_BY_DATASET changes them per dataset.
CLASSIC_FAMILIES = ("lecount", "ledetect")
MODELS["lecount"] = ModelConfig(
    name="lecount", family="lecount", keep="last",
    description="Le.count (Lempitsky & Zisserman, NIPS 2010): dense SIFT code words, a linear "
                "per-pixel density fitted to the dots; count = its integral")
MODELS["ledetect"] = ModelConfig(
    name="ledetect", family="ledetect", keep="last",
    description="Le.detect (Arteta, Lempitsky, Noble & Zisserman, MICCAI 2012): extremal regions, "
                "a learned score, a non-overlapping selection; count = detections")
# The defaults are the bacterial ones (the VGG cells' blue channel, as L&Z used). Nuclei (H&E):
# the haematoxylin optical density replaces the blue channel. Le.count adds 16 intensity bins to
# the SIFT word: validation MAE (40 training images -> 10 held out) 90.8 without, 42.1 with; on a
# 25 -> 25 split 66.7 without, 58.1 with; test 81.15 (bench/results/table4.md). Le.detect lets a
# dot label the region it lies within 2 px of (the share of dots an ideal selection reaches went
# ~80 % -> ~95 %; validation MAE 77.5 -> 79.2, not better: kept for the reach).
# Le.detect on bacterial: the VGG cells overlap, so about a quarter of the dots never get an
# extremal region of their own and a one-cell-per-region selection (Arteta et al. 2012, the
# paper's [5]) under-counts dense images (bias -40 on the validation images). The tuple classes
# of the same authors' follow-up (CVPR 2013: a region may be labelled 2..k cells and counts as
# such; multinomial score) are used there instead. Validation (N = 32 of 001-100 -> the other 68;
# bench/table4_measure.py ledetect bacterial --n 32 --eval val --set learner=logistic
# max_tuple=k): single-cell SSVM 44.0 (bias -39.6), k = 3: 29.0, 8: 25.0, 16: 23.7 (bias -17.4).
# Ki67 (IHC: DAB-brown and haematoxylin-blue nuclei, both counted, on a light background): the
# haematoxylin optical density makes both kinds of nuclei bright, as extremal regions need them,
# where the default blue channel leaves them dark. Le.detect on ki67-synthetic (2026-12-02): with
# the blue channel, fitted on all 45 training images, the 10 test images gave MAE 1255 (the
# mean-count baseline: 1231); with the haematoxylin channel, fitted on 8 training images, 4 other
# training images gave MAE 165 (3327 -> 3374, 429 -> 835, 1774 -> 1944, 2920 -> 2883); fitted on
# all 45 (36 min), the 10 test images: MAE 217.20 +- 154.04, MRE 0.228 (the audit's stand-in cell).
# Le.count on Ki67 takes the nuclei settings (haematoxylin, 16 intensity bins) by the same
# reasoning, not compared with others there: on ki67-synthetic (45 -> 10 test images, 44 min fit)
# MAE 48.32 +- 43.38, MRE 0.0325; cross-validation picked the smallest ridge weight tried (1e-7).
_HE = {"channel": "hematoxylin"}
CLASSIC_BY_DATASET: dict[tuple[str, str], dict] = {
    ("lecount", "nuclei"): {**_HE, "intensity_bins": 16},
    ("lecount", "ki67"): {**_HE, "intensity_bins": 16},
    ("lecount", "ki67-synthetic"): {**_HE, "intensity_bins": 16},
    ("ledetect", "nuclei"): {**_HE, "label_tolerance": 2},
    ("ledetect", "bacterial"): {"learner": "logistic", "max_tuple": 16},
    ("ledetect", "ki67"): dict(_HE),
    ("ledetect", "ki67-synthetic"): dict(_HE),
}


def classic_settings(m: "ModelConfig", ds: "DatasetConfig") -> dict:
    """The settings a classic model is fitted with on a dataset (beyond its own defaults)."""
    return dict(CLASSIC_BY_DATASET.get((m.name, ds.name), {}))


def run_files(m: "ModelConfig") -> tuple[str, ...]:
    """What a trained run folder must hold for counting."""
    return ("model.npz",) if m.classic else ("deploy.prototxt", "model.caffemodel")


# Counting through pycaffe folds each deploy net's BatchNorm + Scale pairs into the convolution
# before them (pycount.nets.fold: the same outputs to float32 rounding, two passes over every
# activation fewer; OpenCV's DNN module fuses them itself). Measured: see docs/speed.md.
FOLD_BATCHNORM = True

# The engine that counts when none is named (BACKEND=, --backend; "auto"): per kind of model, the
# faster of pycaffe and cv2.dnn at one thread in `make bench STAGES=count THREADS=1`
# (bench/results/2026-12-02-vm-count-folded.md, seconds per image, 500x500 / 1920x2560):
# ResNet-50 caffe 2.33 / 153 against cv2 5.22 / 192 (ResNet-101, -152 alike), fcrn-ctx 1.56 /
# 35.9 against 1.78 / 43.5; AlexNet-lite cv2 0.71 / 5.9 against 1.09 / 6.8, fcrn's crops 4.5 / 76
# against 4.4 / 84, AlexNet 8.1 / 45 against 6.8 / 55. On a GPU it is always caffe. With Caffe's
# pooling patch 07 (2026-12-04) fcrn's crops went to caffe as well: a 256 px bacterial image with
# all 8 transforms, caffe 0.442 s against cv2 0.639 s at two threads, 0.729 against 0.94 s at one
# (bench/results/2026-12-04-vm-fcrn-tta-12 to -15; 10 test images, the trainings paused).
DEFAULT_ENGINE = "auto"
ENGINE_BY_KIND = {"resnet": "caffe", "fcrn": "caffe"}     # by model family: both density models
ENGINE_OTHERWISE = "cv2"


def count_engine(m: "ModelConfig") -> str:
    """The engine `auto` picks for a model on the CPU (see ENGINE_BY_KIND)."""
    return ENGINE_BY_KIND.get(m.family, ENGINE_OTHERWISE)


# The per-pixel targets are scaled by this (a density of ~0.003 cells/px is too small a target
# for the loss to move the weights); the nets' output is divided by it.
DENSITY_SCALE = 100.0
# A density model trained with context counts an image in one pass up to this many pixels (padded;
# about 1 GB of blobs for fcrn's widths), and below the size where cv2.dnn's 3x3 convolution
# overflows a 32-bit index (a 2048 x 2048 input through fcrn, 16 channels at full resolution,
# crashed OpenCV 4.10; 1856 x 1856 ran): 4 bytes x 9 x channels x pixels < 2^31, with a margin of
# DENSITY_WHOLE_MARGIN. Larger images go by tiles of DENSITY_TILE px, each with the model's
# context around it, side by side.
DENSITY_WHOLE_MAX_PX = 3_000_000
DENSITY_WHOLE_MARGIN = 0.8
DENSITY_TILE = 1024
# Crops counted by crops (fcrn) go through the net in batches of about this many input pixels
# (64 crops of 64 px; one 49-crop transform of a 256 px image is one call): larger batches were
# no faster at two threads (49 -> 98 -> 196 crops: 0.079, 0.081, 0.084 s per 49 crops, pycaffe,
# 2026-12-04), batches of 16 slower (0.101 s).
DENSITY_BATCH_PX = 262_144


def density_whole_max_px(m: "ModelConfig") -> int:
    """The most (padded) pixels a density model counts in one pass (see DENSITY_WHOLE_MAX_PX)."""
    cv2_limit = DENSITY_WHOLE_MARGIN * 2 ** 31 / (4 * 9 * m.widths[0])
    return int(min(DENSITY_WHOLE_MAX_PX, cv2_limit))

# The paper's ResNets: He et al.'s ImageNet models, trunk frozen, a new 1-output (R) or K-class (C)
# head fine-tuned. A frozen trunk makes the problem a linear (R) or softmax (C) regression on the
# pool5 features, so a larger base_lr is safe; pycount.training.features caches them, and the
# head trains on them. Input: the native patches, as for AlexNet (the paper cuts them to avoid
# resizing, its Sect. 2.2): the trunk's strides leave 2x2 of res5c at 40 and 60 px and 7x7 at
# Ki67's 200 px, and pool5 pools globally (not the 7x7 window of 224 px inputs), so one trunk
# reads every patch size; SIZE=224 resizes the patches as ImageNet's inputs were.
for _depth in (50, 101, 152):
    MODELS[f"resnet{_depth}"] = ModelConfig(
        name=f"resnet{_depth}", family="resnet", depth=_depth,
        weights=f"ResNet-{_depth}-model.caffemodel", finetune="head",
        solver=SolverConfig(base_lr=0.01, batch=32, max_iter=6000, test_interval=500,
                            snapshot=500, clip_gradients=10),
        description=f"ResNet-{_depth} (He et al. 2016), ImageNet weights, new head")


# Where a dataset needs other solver settings than the model's defaults above.
_KI67_BATCH = {"batch": 8}   # 200 px patches: 25x the pixels of 40 px ones, so 1/4 of the batch
SOLVER_BY_DATASET: dict[tuple[str, str], dict] = {
    **{(m, d): _KI67_BATCH for m in MODELS for d in ("ki67", "ki67-synthetic")},
    # 2,400 iterations are a third of an epoch of the nuclei LMDB (118k patches); the validation
    # error was still falling there (1.85 -> 1.19 cells per patch), so train five times longer
    ("alexnet-lite", "nuclei"): {"max_iter": 12000, "test_interval": 1000, "snapshot": 1000},
    # The paper's nuclei AlexNet cells: 10,000 iterations (2.7 passes over the 118,000 training
    # patches; the rate steps down at 6,667) instead of 20,000. Their validation patch MAE at the
    # default rate had flattened by iteration 1,000 (R: 1.21, 1.19, 1.18 at 1,000, 2,000, 2,400;
    # C: 1.33, 1.27, 1.32; docs/audit/validation.png), and the bacterial AlexNet(R) kept its best
    # weights from iteration 6,000 of 20,000. One iteration of 32 patches of 60 px takes ~6 s on
    # one thread of the 2-core development machine: 17 h per cell instead of 33 h. Measured
    # (AlexNet(R), 2026-12-04): validation 1.09 at 6,000 (kept), 1.16-1.21 after the step;
    # test MAE 52.79 against 72.53 at 2,400 iterations (24,853 s of training at one thread).
    ("alexnet", "nuclei"): {"max_iter": 10000},
}


def _lookup(table: dict, name: str, what: str, var: str):
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown {what} {name!r}; valid: {', '.join(sorted(table))} "
                          f"(set {var}=...)") from None


def is_folder(name: str) -> bool:
    """DATASET=path/to/folder: a value with a "/" names a folder of the user's own images."""
    return "/" in name or os.sep in name


def dataset(name: str) -> DatasetConfig:
    """A named dataset of the table above; a folder (is_folder); or the name of an own folder
    prepared before (data/own/<name>.json records where it is)."""
    if is_folder(name):
        return folder_dataset(name)
    if name not in DATASETS:
        record = own_record(name)
        try:
            folder = json.loads(record.read_text())["folder"]
        except (OSError, ValueError, KeyError, TypeError):   # no record, or not one of ours
            folder = None
        if isinstance(folder, str) and folder:
            # (folder_dataset's own ConfigError is a ValueError: a folder deleted since was
            # caught with the unreadable records above and called an unknown dataset)
            if not Path(folder).is_dir():
                raise ConfigError(
                    f"{name!r} is the own folder {folder}, as {record} records, and that folder "
                    f"no longer exists: put it back there, or give its new path "
                    f"(DATASET=path/to/folder). Counting new images with a trained run needs no "
                    f"folder: pycount count --run {runs_dir() / name}/<model>")
            return folder_dataset(folder)
        try:
            return _lookup(DATASETS, name, "dataset", "DATASET")
        except ConfigError as e:
            here = (f"; the folder {name} here is given as DATASET=./{name} (a value with a / "
                    f"is a folder)" if name and Path(name).is_dir() else "")
            raise ConfigError(f"{e}; or a folder of your own annotated images "
                              f"(DATASET=path/to/folder){here}") from None
    return DATASETS[name]


# --- a lab's own folder ---------------------------------------------------------------------------
# DATASET=path/to/folder: the images and their annotations (pycount.data.readers.read_folder), an
# optional pycount.toml beside them fixing any setting below; what it leaves out is inferred from
# the data (pycount.data.owndata), and PATCH=, STRIDE=, ... override both. Zero / empty here means
# "to be inferred".
SPEC_FILE = "pycount.toml"
SPEC_KEYS = {  # key: (type, meaning)
    "name": (str, "the dataset's name (run folders, LMDBs); default: the folder's name"),
    "patch": (int, "patch side, px (patch models)"), "stride": (int, "patch stride, px"),
    "rot_step": (int, "rotation step of the augmentation, degrees (0: none)"),
    "sigma": (float, "density targets' Gaussian width, px"),
    "crop": (int, "density models' training crop side, px (a multiple of 8)"),
    "crop_stride": (int, "the crops' stride, px"),
    "mean_rgb": (list, "mean colour [r, g, b] the nets subtract"),
    "max_patch_count": (int, "C head: the largest count class"),
    "n_val": (int, "training images held out to monitor training; default: one per "
                   "OWN_TRAIN_PER_VAL (20) training images, 1 to 5"),
    "test": (list, "the test images' names (file stems); default: a seeded draw"),
    "marker": (str, "the Cell Counter marker type (number or name) or QuPath class to count; "
                    "default: all"),
    "iters": (int, "training iterations; default: the model's own, fcrn's 8,000"),
    "depth_range": (list, "16-bit / float images: the raw values [low, high] that become 0 and "
                          "255; default: from the training images; [] for each image's own "
                          "stretch"),
    "scale": (float, "every image resized by this factor as it is read (0.5: half the side); "
                     "default: 1, as they are"),
    "zoom": (float, "density models: the training crops also cut from each image at 1/(1+zoom) "
                    "and 1+zoom times its size (ZOOM=); default: 0, none"),
    "hed_jitter": (float, "H&E stain jitter of the training crops, a strength below 1 (HED=); "
                          "default: 0.2 on stained brightfield images, else 0 (none)"),
}
OWN_ROT_STEP = 30     # the paper's rotation step, for every dataset
# ROT= and `rot_step` in pycount.toml are below this (0: none): a step of a whole turn or more
# turns nothing, and ROT=400 was taken
ROT_STEP_BELOW = 360
# An own folder without `n_val` in its pycount.toml holds out one training image per
# OWN_TRAIN_PER_VAL to monitor training, from OWN_MIN_N_VAL to OWN_N_VAL (as the named datasets):
# a small folder needs its images for training more than a smooth validation curve (fcrn keeps its
# last weights, so they only draw the curve). Measured (2026-12-06): VGG cells 001-016 as a folder,
# tested on 101-200, fcrn: 4 held out (the earlier quarter) 2.66 +- 2.46, 1 held out 2.44 +- 2.34,
# paired -0.22 +- 0.08, closer on 62 of 100 (bench/results/2026-12-06-vm-paired-own-vgg16-monitor1.md);
# with 017-032: 2.76 +- 2.25 against 2.26 +- 2.09, paired -0.50 +- 0.12, closer on 68 (-vgg16b-)
OWN_N_VAL = 5
OWN_TRAIN_PER_VAL = 20
# How pycount.data.owndata infers an own folder's settings from its images and dots (d: the cell
# spacing, the median distance from a dot to its nearest neighbour). The constants reproduce the
# named datasets' settings; they are not tuned on any one of them. Measured: VGG bacterial cells
# d = 8.5 px (paper: patch 40, our sigma 2, crop 64); CRC nuclei d = 13.4 px (paper: patch 60, our
# sigma 2, crop 96).
# patch = 4.5 d: 38 -> 40 px bacterial, 60 px nuclei (the paper's); below 24 px AlexNet's strided
# layers leave no map; above 256 nothing is known (Ki67's is 200)
OWN_PATCH_PER_SPACING = 4.5
OWN_PATCH_RANGE = (24, 256)
# sigma = d / 6 (to 0.5 px): the width both named sets count best with, measured paired per
# image at 8,000 fcrn iterations (docs/density-model.md): bacterial 1.5 px = d / 5.7 (against
# 2 = d / 4.25: -0.20 +- 0.06, closer on 65 of 100), nuclei 2 px = d / 6.7 (against 3: -3.01 +-
# 1.46; 1.5 no better, 5 worse). d / 6 gives 1.5 and 2. It was d / 4 before 2026-12-03.
OWN_SIGMA_PER_SPACING = 1 / 6
OWN_SIGMA_RANGE = (1.0, 8.0)
# crop = 7.5 d, a multiple of 8: 64 bacterial (ours), 104 nuclei (ours 96); 192 is Ki67's, larger
# crops cost memory per batch and add no context beyond fcrn's 116 px receptive field
OWN_CROP_PER_SPACING = 7.5
OWN_CROP_RANGE = (48, 192)
# the training crops (mirrors and rotations included) the crop stride aims at: bacterial N = 50
# has 39,600, nuclei 24,480, Ki67 30,720; fcrn's 8,000 iterations x 16 are 3.2 passes over 40,000
OWN_CROP_BUDGET = 40_000
# iterations: the model's own default (fcrn 8,000), whatever the number of crops. Both named sets
# count best at it of what was measured, at 1.8 (bacterial, 71,280 crops) and 5.2 (nuclei, 24,480)
# passes over their crops: bacterial 2.19 against 2.72 at 2,000 iterations, nuclei 38.6 against
# 47.3 at 4,000 (sigma 3). Until 2026-12-03 the rule was 3.2 passes in [2,000, the default], which
# gave a nuclei-like folder 3,000 iterations (48.67, docs/own-data.md) and most folders fewer
# than the named sets'. Nor does a folder of few images over-train at it (2026-12-07, paired
# against ITERS 2,000 on the named sets' test images): VGG 001-004 (3 trained on, 54 passes)
# 3.48 against 4.06, +0.57 +- 0.42 for 2,000; 10 nuclei images (9 trained on, 9 passes) 65.35
# against 84.87, +19.5 +- 8.0 (bench/results/2026-12-07-vm-paired-own-{vgg4,nuclei10}-iters.md).
# scale: an own folder's images are read smaller when its cells lie more than OWN_SCALE_ABOVE px
# apart, by the factor that puts them OWN_SCALE_TO px apart (config.DatasetConfig.scale). The
# rules above were made at d = 8.5 and 13.4 px. Off (inf): measured 2026-12-05 (fcrn, the VGG
# cells as an own folder, 36 test images; bench/results/2026-12-05-vm-paired-owndata-vgg-scale2.md)
# the same images enlarged 2x (d 8.5 -> 17.1 px; patch 76, sigma 3, crop 128 inferred) count as
# well as at 1x: MAE 2.56 against 2.39, paired +0.17 +- 0.20, closer on 18 of 36; training took
# 4,292 s against 952 s. So larger cells cost time, not accuracy, and SCALE=0.5 is the user's
# choice to take the time back; read smaller by default it would also drop the real detail a
# higher magnification holds, which an enlarged image does not, and that was not measured.
# 2026-12-08, cells ~26 px apart (crop 192, the cap; fcrn's receptive field 4.5 d): the 30-image
# nuclei folder (29 trained on, the recorded 50 test) and the VGG cells (100/100), enlarged
# bicubic (nuclei 2x, VGG 3x), counted as they are and read at the factor this rule would give
# (bench/results/2026-12-08-vm-paired-own-{nuclei30up2,vggup3}-scale.md): nuclei 39.20 as they
# are against 35.82 at SCALE=0.5, paired -3.38 +- 2.65, closer on 25 of 50; VGG 2.16 against 2.04
# at 0.52, -0.11 +- 0.10, 49 of 100; training 3,857 s against 948 s and 3,692 s against 907 s.
# Still off: the spacing is not the cells' size (sparse small cells read smaller could vanish),
# and that was not measured. Beyond OWN_SCALE_HINT_ABOVE px the printout proposes the factor.
OWN_SCALE_ABOVE = math.inf
OWN_SCALE_TO = 13.4
OWN_SCALE_HINT_ABOVE = 20.0
# hed_jitter: an own folder of stained brightfield images (H&E, IHC: the training images' mean
# colour bright and its channels apart) has its density models' training crops stain-jittered by
# OWN_HED_JITTER unless its pycount.toml or HED= says otherwise; a dark folder (fluorescence) or a
# grey one (channels alike: phase contrast, unstained) none, nor one trained without rotations.
# Measured (fcrn, 8,000 its, one thread, paired per test image against no jitter; docs/own-data.md):
# nuclei folders of 9 training images -8.63 +- 6.41 and, a second draw, -9.49 +- 6.56; of 19,
# -5.96 +- 2.56 (closer on 29 of 50); of 29, -2.61 +- 1.26 (27 of 50); 45 (the named set,
# sigma 2) -0.68 +- 1.71: the gain shrinks with the folder's size, and it helps a
# folder of few images and costs a larger one nothing. An IHC stand-in (the Ki67 synthetic's
# DAB and haematoxylin, 12 images of 640 px trained on, 20 test): 1.50 against 2.02, -0.52 +-
# 0.27, closer on 15 of 20 (bench/results/2026-12-07-vm-paired-own-ki67s12-hed.md). Only 0 and
# 0.2 were measured. Nuclei's mean colour: 203, channels 39 apart; the stand-in's 212, 14; VGG 30.
OWN_HED_JITTER = 0.2
OWN_BRIGHTFIELD_MIN = 128.0    # the mean colour's average channel (8-bit) from which it is bright
OWN_STAIN_SPREAD_MIN = 6.0     # its channels' spread (largest - smallest) from which it is stained
OWN_INFERRED = -1.0            # hed_jitter of a folder whose pycount.toml leaves it to be inferred
OWN_ENCODE_ABOVE = 4 << 30     # bytes of raw patches above which the patch LMDB stores PNGs
OWN_FALLBACK_SPACING = 10.0    # px, when no training image has two dots
# Marks at the very same position are counted once by every reader (readers.drop_repeats: a
# file exported twice counts as once). Marks closer than OWN_DUPLICATE_PX to another, but not at
# its very position, are one cell marked twice too (a double click): no two cells' centres lie
# that close. They are left out of the cell spacing (a folder marked twice over measured 0 px
# and got patch 24, sigma 1 where 8 px cells need 36 and 1.5) and named; more than
# OWN_DUPLICATE_REFUSE of all marks is refused, as every such cell would be learned and counted
# twice. The CRCHistoPhenotypes release holds 8 exact repeats among its 29,756 marks (counted
# once) and one pair 0.68 px apart (img58).
OWN_DUPLICATE_PX = 1.0
OWN_DUPLICATE_REFUSE = 0.05
# A training image holding more than this share of the training images' area (one large image among
# small ones) is named when the settings are printed: the nets learn mostly from it.
OWN_ONE_IMAGE_SHARE = 0.5
# the C head's classes (0 .. max_patch_count): OWN_CLASS_HEADROOM times the densest training
# image's cells per patch area, plus OWN_CLASS_MARGIN: a test patch denser than any training
# patch still has a class
OWN_CLASS_HEADROOM = 2.0
OWN_CLASS_MARGIN = 10
# Limits on what an own folder's pycount.toml or the command line may set (pycount.data.owndata):
# name: it becomes a folder and file name under data/, runs/; spaces inside, as a folder's own
# name may hold them (a folder "my cells" is taken by its name as it is)
OWN_NAME_PATTERN = r"[\w-](?:[\w .-]*[\w.-])?"
OWN_NAME_MAX = 100             # characters of that name (file names stop at 255 bytes)
OWN_MIN_TRAIN_IMAGES = 2       # one image to train on, one to validate (the rest of `test`)
OWN_MIN_IMAGES = OWN_MIN_TRAIN_IMAGES + 1   # annotated images a folder needs: and one to test
OWN_MIN_N_VAL = 1              # validation picks the weights kept and watches for overfitting
# prepare notes the images of an own folder that mark no cell where its median image marks at
# least this many (every mark counted): more often a file that lost its marks than an empty field
OWN_EMPTY_AMONG = 20
# A patch or crop side given for an own folder, px (the named sets' PATCH=, CROP= and SIZE= take
# the same bounds): at least 8 (the nets pool three times, each halving the side; below 8 no map
# is left), at most 1024 (fcrn's batch of 16 such crops needs 1 GB per 16-channel full-size layer,
# AlexNet's fc6 on such a patch a billion weights; the named sets use 40-200, SIZE= 224 or 227,
# and SIZE=99999 asked cv2 for 30 GB to resize the first patch), and never beyond the folder's
# largest image side (unless the inferred range's floor is larger): a larger window is padding
# only, and padding every image to 100,000 px asked for 30 GB
WINDOW_LIMITS = (8, 1024)
# SIGMA= and `sigma` in pycount.toml (the density targets' Gaussian width, px), checked before
# any target is drawn: at least SIGMA_MIN, since a narrower Gaussian is one pixel's dot (and
# below ~0.03 px its samples underflow to 0 and the target is 0 / 0); at most SIGMA_MAX_PER_CROP
# times the training crop's side. Each dot's Gaussian is cut off at 4 sigma, so at a quarter of
# the crop a single dot already spans twice the crop and its density is all but flat over it:
# wider targets locate nothing, and a width of 1e9 px asked for a 60 GB window. The bound is
# generous: the named sets use 2-4 px and the inferred range is OWN_SIGMA_RANGE (1-8 px), while
# it admits 12-48 px at the inferred crops (48-192) and 16 px at synthetic's 64 px crops.
SIGMA_MIN = 0.5
SIGMA_MAX_PER_CROP = 0.25
# The mean colour a pycount.toml may give (mean_rgb): the nets read 8-bit values, so a mean
# outside them is a typing error, and one of nan made every input nan (a training that
# "diverged" for no reason it could name)
MEAN_RGB_RANGE = (0.0, 255.0)
# The settings of pycount.toml where 0 would mean "infer it" inside pycount (DatasetConfig's
# zero): written there, 0 is refused, as on the command line, and the message says to remove
# the key to have it inferred
SPEC_NOT_ZERO = ("patch", "stride", "sigma", "crop", "crop_stride", "iters", "max_patch_count")
# SCALE= (DatasetConfig.scale), and `scale` in pycount.toml: a tenth of the side keeps 10 px of a
# 100 px cell; 4x enlarges 2 px cells to 8 px, beyond which an enlargement invents detail
SCALE_LIMITS = (0.1, 4.0)
# prepare warns where SCALE= puts the training images' cells closer than this (median nearest
# neighbour, px): the narrowest density target (sigma 1 px) is ~4 px wide, so closer cells merge
SCALE_MIN_SPACING = 4.0
# ZOOM= (DatasetConfig.zoom), when not 0, within these: crops cut at up to twice and half the
# cells' size, and at least 5 % off it (a smaller change rounds most images back to their size:
# the same crops written three times)
ZOOM_LIMITS = (0.05, 1.0)
# A dot mask (pycount.data.annotations.mask_centres) is refused when it is no mask of dots: when more
# than MASK_MAX_ON_SHARE of its pixels are marked (a solid or inverted mask), or when a blob is
# larger than both MASK_MAX_BLOB_AREA px (a disc of radius 9) and MASK_MAX_BLOB_DOTS times the
# mask's median blob (a filled region among dots; a cluster of touching discs in a dense set
# stays a count of k discs)
MASK_MAX_ON_SHARE = 0.25
MASK_MAX_BLOB_AREA = 256
MASK_MAX_BLOB_DOTS = 20
# A mask whose values (two at least) are each one 8-connected region, but for this share of
# them in two or more pieces (a cell cut by a brush stroke), is read as instance labels, one cell
# per value (annotations.label_centres): Cellpose's, StarDist's and other segmentations' masks
MASK_LABEL_SPARE = 0.05
# A lossless mask without 0 holding 3 to MASK_CLASS_VALUES_MAX values is a pixel classifier's
# segmentation (ilastik's Simple Segmentation: a value per class, background included),
# refused naming its values: two such values are read (the rarer the marks), more say
# neither which class is the cells nor where touching cells part
MASK_CLASS_VALUES_MAX = 16
# A cell centre at most this far (px) beyond an image's edge is a click on its border (or a
# centroid rounded past it), moved onto the edge pixel and counted, with a note; one farther out
# is refused. The CRC release has 5 centres up to 0.73 px out (0.27 in its 1-based coordinates)
EDGE_TOLERANCE_PX = 1.0
# Two classes of one image (class folders, classes in file names) whose marks coincide, at least
# CLASS_SAME_SHARE of the fewer (CLASS_SAME_MIN or more) within CLASS_SAME_PX px of the other's,
# mark the same cells (two annotators' files, one annotation saved twice): said in a note, as
# every class counts. Kinds of cells lie a cell apart (BCData's positive and negative nuclei,
# the CRC release's four classes: nearest marks 8-13 px apart)
CLASS_SAME_PX = 3.0
CLASS_SAME_SHARE = 0.5
CLASS_SAME_MIN = 5
# A blob of k touching dots is split into k cells by k-means on its pixels (annotations.split_blob),
# at most this many rounds (a blob of a few dots settles in 2-5)
MASK_SPLIT_ROUNDS = 20
# Discs of one size (one brush) or of several in one mask (annotations.disc_counts). A blob may
# be several discs when its farthest pixel lies MASK_SEVERAL_SPREAD or more times the radius of a
# disc of its area from its centroid (+0.5 px for the pixel itself: a row of discs), or when its
# area is MASK_SEVERAL_FILL or more times that of a disc as deep as its distance transform's
# maximum (a heap; an even-sided dot, 2x2 px or a disc around a pixel corner, is shallow for its
# area and looks so too). Where fewer than MASK_MIN_SINGLES of the blobs look single, shapes say
# little (a mask of even-sided dots): each blob is its area over the median blob's, as before
# 2026-12-06. Else, where at least MASK_ONE_SIZE_SHARE of the single-looking blobs lie within
# MASK_ONE_SIZE_BAND times their median area either way (discs of one size), each blob is its
# area over theirs (not the median blob's: where touching groups outnumber the single discs, the
# median blob is a group and each group was read as one cell). Else (discs of several sizes) a
# blob both spread and heaped is its area over that of the single discs as deep (at least 2),
# any other one cell: a larger disc is no longer 2 of the median size. Measured with
# bench.mask_discs (600 px masks of 121 cells, 15 or 40 % of the discs touching in pairs or
# triangles, one cut by the edge; discs 3-11 px across of odd width and 2-8 px of even width, one
# size or several; bench/results/2026-12-06-vm-mask-discs.md): summed absolute error 1,245
# against the area rule's 2,169, closer on 74 masks and further on 18 of 224; of one disc size
# all exact but one mask (even-sided 4 px dots, 40 % in triangles: -62 by both rules; the area
# rule also lost 62-64 on three masks of odd-width discs); of several sizes, mixed even-sided
# sizes and triangles of 3 px discs among larger ones stay wrong by both rules.
MASK_ONE_SIZE_SHARE = 0.9
MASK_ONE_SIZE_BAND = 1.5
MASK_SEVERAL_SPREAD = 1.3
MASK_SEVERAL_FILL = 1.4
MASK_MIN_SINGLES = 0.25
# A binary mask whose blobs are as deep as a disc of radius MASK_REGION_DEPTH px or more (their
# median) and not of one size (their single-looking ones, as above; or few look single) is a
# segmentation of whole cells, not dots: each 8-connected region is one cell, at its centroid,
# whatever its shape (an elongated nucleus looks spread and heaped, and was read as two). The
# discs of every dot mask measured (bench.mask_discs: radius 1-5, 1.2-5.2 deep) lie below it;
# touching cells that a binary segmentation merged stay one, as it drew them.
MASK_REGION_DEPTH = 7.0


def own_record(name: str) -> Path:
    """Where an own folder's inferred settings are cached (and its path recorded)."""
    return data_dir() / "own" / f"{name}.json"


def _parse_spec(text: str) -> dict:
    """The spec file: TOML (tomllib, Python >= 3.11); on 3.10 _parse_simple."""
    try:
        import tomllib
    except ModuleNotFoundError:
        return _parse_simple(text)
    return tomllib.loads(text)


def _parse_simple(text: str) -> dict:
    """The TOML subset pycount's keys use, for Python 3.10: `key = value` lines whose value is a
    number, a "string", true/false or a [list] of them; # comments outside strings."""
    import ast
    again = _set_twice(text)        # (TOML refuses it: this reader would keep the last)
    if again:
        raise ValueError(f"Cannot overwrite a value: {again[0]} is set twice")
    out = {}
    for line in text.splitlines():
        quote, cut = None, len(line)
        for i, ch in enumerate(line):          # the first # outside a string starts a comment
            if ch in "\"'" and quote in (None, ch):
                quote = None if quote else ch
            elif ch == "#" and quote is None:
                cut = i
                break
        line = line[:cut].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected key = value, got {line!r}")
        value = value.strip()
        value = {"true": "True", "false": "False"}.get(value, value)
        out[key.strip()] = ast.literal_eval(value)
    return out


def _set_twice(text: str) -> tuple[str, int, int] | None:
    """(key, first line, second line) of the first key a pycount.toml sets twice at its top
    level (TOML refuses it as "Cannot overwrite a value"); None where none is. Read by lines:
    asked only once the file failed to parse so, or by _parse_simple (no multi-line values)."""
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("["):         # a table: its keys are its own
            break
        m = re.match(r"\s*([A-Za-z_][\w-]*)\s*=", line)
        if m:
            if m.group(1) in seen:
                return m.group(1), seen[m.group(1)], n
            seen[m.group(1)] = n
    return None


def read_spec(folder: Path) -> dict:
    """The folder's pycount.toml as checked settings ({} without one). Read as UTF-8 with or
    without a byte-order mark (Windows editors write one; tomllib takes it for a statement), or
    as UTF-16 where it starts with that mark (Windows Notepad's "Unicode")."""
    path = folder / SPEC_FILE
    if not path.is_file():
        return {}
    try:
        raw = path.read_bytes()
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        if not utf16 and b"\x00" in raw:       # no TOML text holds a NUL byte
            raise ConfigError(f"{path}: byte {raw.index(0)} is a NUL: UTF-16 text without its "
                              f"byte-order mark, or no text at all; save it as UTF-8")
        text = raw.decode("utf-16" if utf16 else "utf-8-sig")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror or e}); make it readable, or "
                          f"remove it") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: byte {e.start} is not UTF-8 text ({raw[e.start:e.start + 1]!r}"
                          f"; an editor's legacy encoding, e.g. Windows-1252 for an accent); save "
                          f"it as UTF-8") from None
    try:
        spec = _parse_spec(text)
    except Exception as e:  # tomllib.TOMLDecodeError, ValueError, SyntaxError: all a bad file
        again = _set_twice(text) if "overwrite" in str(e).lower() else None
        if again:
            raise ConfigError(f"{path}: {again[0]} is set twice (lines {again[1]} and "
                              f"{again[2]}); keep one of them") from None
        raise ConfigError(f"{path}: cannot parse it ({e}); write one `key = value` per line, "
                          f"e.g. patch = 60") from None
    for key, value in spec.items():
        if key not in SPEC_KEYS:
            import difflib
            near = difflib.get_close_matches(key.lower(), SPEC_KEYS, n=1, cutoff=0.6)
            raise ConfigError(f"{path}: unknown setting {key!r}"
                              + (f" (did you mean {near[0]}?)" if near else "")
                              + f"; valid: {', '.join(SPEC_KEYS)}")
        kind = SPEC_KEYS[key][0]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float \
            else isinstance(value, kind) and not isinstance(value, bool)
        if key == "marker" and isinstance(value, int) and not isinstance(value, bool):
            spec[key], ok = str(value), True
        # (a number: finite too; TOML writes nan and inf, and sigma = nan sent owndata.resolve
        # round in circles, nan being unequal to itself)
        if not ok or (kind in (int, float) and not 0 <= value < math.inf):
            expected = (f"a finite, non-negative {kind.__name__}" if kind in (int, float)
                        else kind.__name__)
            raise ConfigError(f"{path}: {key} = {value!r} is not valid; expected {expected} "
                              f"({SPEC_KEYS[key][1]})")
        if key in SPEC_NOT_ZERO and value == 0:
            then = ("train the model's default number" if key == "iters" else
                    "have it inferred from the images")
            raise ConfigError(f"{path}: {key} = 0 is not valid ({SPEC_KEYS[key][1]}): remove "
                              f"that line to {then}, or give a positive value")
    low, high = MEAN_RGB_RANGE
    if "mean_rgb" in spec and (len(spec["mean_rgb"]) != 3 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high
            for v in spec["mean_rgb"])):
        raise ConfigError(f"{path}: mean_rgb = {spec['mean_rgb']!r} is not valid: give three "
                          f"numbers [r, g, b] from {low:g} to {high:g} (the 8-bit colour the nets "
                          f"subtract), or remove it to have it measured on the training images")
    if spec.get("sigma", SIGMA_MIN) < SIGMA_MIN:
        raise ConfigError(f"{path}: sigma = {spec['sigma']!r} is not valid: use a width of at "
                          f"least {SIGMA_MIN:g} px (a narrower Gaussian is a single pixel's dot), "
                          f"or remove it to have it inferred")
    if not 0 <= spec.get("rot_step", 0) < ROT_STEP_BELOW:
        raise ConfigError(f"{path}: rot_step = {spec['rot_step']} is not valid: use a rotation "
                          f"step in degrees from 1 to {ROT_STEP_BELOW - 1} (the paper's 30), or "
                          f"0 for none")
    if "depth_range" in spec and (len(spec["depth_range"]) not in (0, 2) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in spec["depth_range"]) or (spec["depth_range"] and not (
                0 < spec["depth_range"][1] - spec["depth_range"][0] < math.inf))):
        raise ConfigError(f"{path}: depth_range must be two numbers [low, high] with low < high "
                          f"(or [] for each image's own stretch)")
    if "scale" in spec and not SCALE_LIMITS[0] <= spec["scale"] <= SCALE_LIMITS[1]:
        raise ConfigError(f"{path}: scale = {spec['scale']} must be a factor from "
                          f"{SCALE_LIMITS[0]:g} to {SCALE_LIMITS[1]:g} (0.5 halves every image's "
                          f"sides), or leave it out to have it inferred")
    if "zoom" in spec and not (spec["zoom"] == 0 or ZOOM_LIMITS[0] <= spec["zoom"] <= ZOOM_LIMITS[1]):
        raise ConfigError(f"{path}: zoom = {spec['zoom']} must be a range from "
                          f"{ZOOM_LIMITS[0]:g} to {ZOOM_LIMITS[1]:g} (0.25: crops also cut at "
                          f"1/1.25 and 1.25 times each image's size), or 0 for none")
    if "hed_jitter" in spec and not spec["hed_jitter"] < 1:
        raise ConfigError(f"{path}: hed_jitter = {spec['hed_jitter']} must be a strength below 1 "
                          f"(e.g. 0.05), or 0 for none")
    if spec.get("zoom") and spec.get("sigma", math.inf) / (1 + spec["zoom"]) < SIGMA_MIN:
        raise ConfigError(f"{path}: zoom = {spec['zoom']} narrows sigma = {spec['sigma']} to "
                          f"{spec['sigma'] / (1 + spec['zoom']):g} px in the shrunken crops, "
                          f"below {SIGMA_MIN:g} px: use a smaller zoom or a larger sigma")
    for key in ("zoom", "hed_jitter"):
        if spec.get(key) and spec.get("rot_step") == 0:
            raise ConfigError(f"{path}: {key} = {spec[key]} augments the mirrored and rotated "
                              f"training crops, and rot_step = 0 takes the crops as they are: "
                              f"remove one of the two lines")
    if "crop" in spec and spec["crop"] % 8:
        raise ConfigError(f"{path}: crop = {spec['crop']} must be a multiple of 8 (the density "
                          f"nets pool three times)")
    return spec


def folder_dataset(path) -> DatasetConfig:
    """The settings of a folder of the user's own images: its pycount.toml's, the rest zero (to be
    inferred from the images by pycount.data.owndata.resolve). Named after the folder; a name of
    the table above gets "-own" so that the two never share LMDBs or run folders."""
    root = Path(path).expanduser().resolve()
    if root.is_file():                  # an image or annotation given for its folder
        raise ConfigError(f"{path} is a file, not a folder: DATASET names the folder that holds "
                          f"the images and their annotations (for this file's, {root.parent})")
    if not root.is_dir():
        raise ConfigError(f"dataset folder {path} does not exist (a DATASET with a / names a "
                          f"folder of annotated images); check the path")
    spec = read_spec(root)
    name = str(spec.get("name") or root.name)
    if name in DATASETS:
        name += "-own"
    mean = spec.get("mean_rgb")
    return DatasetConfig(
        name=name, layout="folder", patch=spec.get("patch", 0), stride=spec.get("stride", 0),
        rot_step=spec.get("rot_step", OWN_ROT_STEP), train_ids=(),
        test_ids=tuple(str(t) for t in spec.get("test", ())), n_val=spec.get("n_val", OWN_N_VAL),
        subdir=str(root), mean_bgr=tuple(float(v) for v in mean[::-1]) if mean else (),
        max_patch_count=spec.get("max_patch_count", 0), sigma=float(spec.get("sigma", 0.0)),
        crop=spec.get("crop", 0), crop_stride=spec.get("crop_stride", 0), pad=True,
        marker=str(spec.get("marker", "")), iters=spec.get("iters", 0),
        depth_range=tuple(float(v) for v in spec.get("depth_range", ())),
        scale=float(spec.get("scale", 0.0)), zoom=float(spec.get("zoom", 0.0)),
        hed_jitter=float(spec.get("hed_jitter", OWN_INFERRED)),    # (owndata.resolve infers it)
        spec=tuple(sorted(spec)), description=f"own images in {root}")


def run_dataset(run: Path, name: str) -> DatasetConfig:
    """The dataset a run folder was trained on: a named one, or the settings its dataset.json
    recorded (an own folder's inferred settings: counting needs no folder)."""
    if name in DATASETS:
        return DATASETS[name]
    recorded = Path(run) / "dataset.json"
    if not recorded.is_file():
        raise ConfigError(f"{recorded} is missing: a run on an own folder keeps the settings it "
                          f"was trained with there; copy the whole run folder again, or re-run "
                          f"make train")
    try:
        return dataset_from_json(recorded.read_text())
    except (ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"{recorded} is incomplete or corrupt ({e}); copy the run folder again, "
                          f"or re-run make train") from None


def dataset_to_json(ds: DatasetConfig) -> str:
    from dataclasses import asdict
    return json.dumps(asdict(ds), indent=1)


def dataset_from_json(text: str) -> DatasetConfig:
    d = json.loads(text)
    for k in ("train_ids", "test_ids", "mean_bgr", "spec", "defaults", "stain_ref", "depth_range",
              "image_dtypes"):
        d[k] = tuple(d.get(k) or ())
    return DatasetConfig(**d)


def model(name: str, ds: DatasetConfig | None = None) -> ModelConfig:
    """A model's settings; with `ds`, its solver as set for that dataset (SOLVER_BY_DATASET)."""
    m = _lookup(MODELS, name, "model", "MODEL")
    changes = SOLVER_BY_DATASET.get((name, ds.name), {}) if ds else {}
    return replace(m, solver=replace(m.solver, **changes)) if changes else m


def schedule(m: ModelConfig, ds: DatasetConfig | None = None) -> int | None:
    """The iterations a `make train` without ITERS= trains model `m` (as `model(name, ds)` gives
    it: its solver as set for that dataset) on `ds`: an own folder's pycount.toml `iters`, else
    the model's schedule; None for a classic method (fitted, not iterated). Training, a run's
    resume hint, the protocol and the audit all read a run's schedule here."""
    if m.classic:
        return None
    return int(ds.iters) if ds is not None and ds.iters else m.solver.max_iter


HEADS = ("R", "C")    # regression (the paper's R), classification over counts (C)


def check_names(dataset_name: str = "", model_name: str = "", head: str = "") -> str | None:
    """The Makefile's first step: None if the (non-empty) names are known, else the message."""
    try:
        if dataset_name:
            dataset(dataset_name)
        if model_name:
            model(model_name)
        if head and head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; valid: {', '.join(HEADS)} (set HEAD=...)")
    except ConfigError as e:
        return f"make: {e}"
    return None


def n_classes(ds: DatasetConfig) -> int:
    return ds.max_patch_count + 1


def lmdb_dir(ds: DatasetConfig) -> Path:
    return data_dir() / "lmdb" / ds.tag


def density_lmdbs(ds: DatasetConfig, part: str, context: int = 0) -> tuple[Path, Path]:
    """(crops LMDB, density targets LMDB) of a density model's "train" or "val" part (crops
    with `context` px of context on each side: their own pair)."""
    root = lmdb_dir(ds) / ("density" if not context else f"density-ctx{context}")
    return root / f"{part}_lmdb", root / f"{part}_targets_lmdb"


def run_name(m: ModelConfig | str, head: str = "R") -> str:
    """A run's folder name, of a model or its name: runs of the regression head (the paper's)
    are named by the model; C runs get "-C"."""
    name = m if isinstance(m, str) else m.name
    return name if head == "R" else f"{name}-{head}"


def run_dir(ds: DatasetConfig, m: ModelConfig, head: str = "R") -> Path:
    return runs_dir() / ds.tag / run_name(m, head)
