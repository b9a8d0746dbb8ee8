"""pycount.training.validation, on LMDBs written in a temporary folder and a stand-in for the
pycaffe net (no training)."""
import numpy as np
import pytest

pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from pycount import config  # noqa: E402
from pycount.data import lmdbio
from pycount.errors import TrainError
from pycount.training import validation


def test_validation_without_crops_is_refused_by_name(tmp_path):
    """Empty crop and target LMDBs: a TrainError naming them, not numpy's 'need at least one
    array to stack'."""
    lmdbio.write_lmdb(tmp_path / "img", iter([]), n_max=0, patch=6, seed=0, manifest={},
                      targets=tmp_path / "tgt")
    with pytest.raises(TrainError) as err:
        validation.load_val_crops(tmp_path / "img", tmp_path / "tgt")
    assert str(err.value) == (f"{tmp_path / 'img'}: the validation crops are missing or do not "
                              f"match {tmp_path / 'tgt'}; re-run `make prepare`")


def test_validation_density_sums_ask_the_r_head_in_batches(monkeypatch):
    """A density model's map is the R head's output, read `batch` crops at a time (32 unless
    given)."""
    ds, model = config.dataset("synthetic"), config.model("fcrn")
    assert model.context == 0
    asked = []

    class Stub:
        @staticmethod
        def _forward(x):
            return np.ones((len(x), 1, 4, 4), np.float32)

    def from_net(net, model_, ds_, head, batch):
        asked.append((net, model_, ds_, head, batch))
        return Stub
    monkeypatch.setattr(validation.CaffeBackend, "from_net", from_net)
    monkeypatch.setattr(validation.nets, "preprocess", lambda rgb, m, d: rgb)
    rgb = np.zeros((5, 4, 4, 3), np.uint8)
    assert validation.predict_density_sums("net", rgb, model, ds, batch=2).tolist() == [16.0] * 5
    assert validation.predict_density_sums("net", rgb, model, ds).tolist() == [16.0] * 5
    assert asked == [("net", model, ds, "R", 2), ("net", model, ds, "R", 32)]
