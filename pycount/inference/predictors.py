"""The predictor a run asks for: per-window engines (pycaffe, cv2.dnn), the shared-trunk
sliding window, or the fully convolutional density model. Every predictor answers
`count_image(image) -> density.ImageCount`, so evaluation and `pycount count` never branch on the
model kind."""
from __future__ import annotations

from pathlib import Path

from pycount import config
from pycount.data import stain
from pycount.inference.classic import ClassicPredictor
from pycount.inference.engines import BACKENDS, CHOICES, CLASSIC_ENGINE, Predictor, resolve
from pycount.inference.fullconv import DensityPredictor
from pycount.inference.run import load_run
from pycount.inference.shared import SharedPredictor


def make_predictor(name: str, run_or_paths, model: config.ModelConfig | None = None,
                   ds: config.DatasetConfig | None = None, head: str | None = None,
                   batch: int | None = None, expected: bool = False, shared: bool = False,
                   tta: int | None = None) -> Predictor | DensityPredictor | ClassicPredictor:
    """A predictor by engine name, for a run folder (its train.json gives model, dataset and
    head) or for its files (config.run_files: deploy.prototxt and weights, or a classic
    method's model.npz) with model, ds and head given. shared=True:
    the convolutional trunk runs once per image instead of once per window (inference.shared).
    tta: a density model's test-time augmentation (None: the model's own setting)."""
    if name not in CHOICES and name != CLASSIC_ENGINE:
        raise config.ConfigError(f"unknown backend {name!r}; valid: {', '.join(CHOICES)}")
    if isinstance(run_or_paths, (str, Path)):
        run = load_run(run_or_paths)
        deploy, weights, model, ds, head = run.deploy, run.weights, run.model, run.ds, run.head
    else:
        deploy, weights = run_or_paths[0], run_or_paths[-1]
        if model is None or ds is None or head is None:
            raise ValueError("make_predictor: give model, ds and head with explicit paths")
    predictor = _predictor(name, deploy, weights, model, ds, head, batch, expected, shared, tta)
    if ds.stain_norm:
        if len(ds.stain_ref) != config.STAIN_METHODS[ds.stain_norm]:
            raise config.ConfigError(f"STAIN={ds.stain_norm}: no normalisation target for "
                                     f"{deploy}; count with the run folder (its train.json)")
        return StainNormalised(predictor, ds.stain_norm, ds.stain_ref)
    return predictor


class StainNormalised:
    """A predictor whose images are first stain-normalised to the run's target, as its
    training images were (STAIN=; pycount.data.stain)."""

    def __init__(self, inner, method: str, ref):
        self.inner, self.method, self.ref = inner, method, tuple(ref)

    def count_image(self, image):
        return self.inner.count_image(stain.normalise(self.method, image, self.ref))

    def __getattr__(self, name):                # tta, engine, ... as the wrapped predictor's
        return getattr(self.inner, name)


def _predictor(name, deploy, weights, model, ds, head, batch, expected, shared, tta):
    if not model.density and tta not in (None, 1):    # patch and classic models alike
        raise config.ConfigError(f"TTA={tta}: test-time augmentation is for density models "
                                 f"(MODEL=fcrn), not {model.name}")
    if model.classic:
        if shared:                  # refused, not silently ignored
            raise config.ConfigError(f"{model.name} has no convolutional trunk to share (drop "
                                     f"--shared / SHARED=1)")
        return ClassicPredictor(weights, model, ds)
    name = resolve(name, model)
    if model.density:
        if shared:
            raise config.ConfigError(f"{model.name} is fully convolutional: it already runs once "
                                     f"per image (drop --shared / SHARED=1)")
        return DensityPredictor(deploy, weights, model, ds, engine=name, tta=tta)
    if shared:
        return SharedPredictor(deploy, weights, model, ds, head, batch=batch, expected=expected,
                               engine=name)
    return BACKENDS[name](deploy, weights, model, ds, head, batch=batch, expected=expected)
