"""RESPLIT=s: the recorded split drawn again (same sizes) for the split-to-split spread."""
import pytest

from pycount import config
from pycount.data import prepare
from pycount.errors import ConfigError


@pytest.mark.parametrize("name", ["nuclei", "bacterial"])
def test_resplit_redraws_train_and_test_at_the_recorded_sizes(name):
    ds = config.dataset(name)
    recorded = prepare.split(ds)
    pool = set(ds.train_ids) | set(ds.test_ids)
    draws = []
    for seed in (1, 2):
        d = config.with_overrides(ds, resplit=seed)
        assert d.tag == f"{name}-split{seed}"
        ids = prepare.split(d)
        assert ids == prepare.split(d)                    # reproducible
        train = set(ids["train"]) | set(ids["val"])
        assert len(train) == len(ds.train_ids) and len(ids["test"]) == len(ds.test_ids)
        assert train | set(ids["test"]) == pool and not train & set(ids["test"])
        assert ids["test"] != recorded["test"]
        draws.append(ids["test"])
    assert draws[0] != draws[1]


def test_resplit_needs_a_recorded_split():
    with pytest.raises(ConfigError, match="RESPLIT=1: ki67"):
        config.with_overrides(config.dataset("ki67"), resplit=1)
