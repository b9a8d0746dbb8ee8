"""bench/owndata_check.py writes the public sets in the layouts labs produce; the own-data readers
must get every cell of the source back from each of them."""
import numpy as np
import pytest

from conftest import SHARED
from bench import owndata_check as check
from pycount.data import readers

pytestmark = pytest.mark.skipif(not (SHARED / "vgg_cells").is_dir(), reason="no shared datasets")


def test_tiled_csv_variant_keeps_every_dot(tmp_path):
    folder = check.build("vgg-2x2-csv", tmp_path)
    got = readers.read_folder(folder)
    src = readers.read_vgg_cells(SHARED / "vgg_cells")
    assert len(got) == 50 and got[0].image.shape == (512, 512, 3)
    assert [s.count for s in got] == [sum(s.count for s in src[k:k + 4]) for k in range(0, 200, 4)]
    # the second tile's dots sit 256 px to the right of their source image's
    first = got[0].centres[src[0].count:src[0].count + src[1].count]
    np.testing.assert_allclose(first, src[1].centres + (256, 0), atol=0.01)


def test_cellcounter_variant_reads_back_within_rounding(tmp_path):
    folder = check.build("nuclei-cellcounter", tmp_path)
    assert len(list(folder.glob("CellCounter_*.xml"))) == 100
    got = {s.id: s for s in readers.read_folder(folder)}
    src = readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28")
    for s in src[:10]:
        assert np.abs(got[s.id].centres - s.centres).max() <= 0.5 + 1e-9
    assert sum(s.count for s in got.values()) == 29756


def test_small_16bit_variant_is_grey_and_counts_its_crop(tmp_path):
    import cv2
    folder = check.build("vgg-small-grey16", tmp_path)
    raw = cv2.imread(str(folder / "001.tif"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (150, 150)
    src = readers.read_vgg_cells(SHARED / "vgg_cells", ids=["001"])[0]
    inside = ((np.round(src.centres) < 150).all(axis=1)).sum()
    got = readers.read_folder(folder, ids=["001"])[0]
    assert got.count == inside and got.image.shape == (150, 150, 3)
    assert (folder / ".complete").exists()


def test_a_failed_step_ends_in_one_line_and_its_status(tmp_path, monkeypatch, capsys):
    """A step that fails (or is stopped: a training interrupted) is named in one line with the
    way on; no traceback of the harness."""
    import subprocess
    monkeypatch.setattr(check, "build", lambda variant, root: tmp_path / variant)

    def stopped(cmd, **kw):
        raise subprocess.CalledProcessError(130, cmd)
    monkeypatch.setattr(check.subprocess, "run", stopped)
    assert check.main(["--variants", "vgg-2x2-csv", "--root", str(tmp_path)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [next(line for line in err if "exited" in line)]
    assert "`pycount prepare` on vgg-2x2-csv exited 130" in err[0] and "again" in err[0]


def test_geojson_variants_read_back_at_both_scales(tmp_path):
    """QuPath's MultiPoint export reads back every dot; the 2x pair keeps the names (the same test
    draw) and puts each dot on its cell's enlarged pixels."""
    src = readers.read_vgg_cells(SHARED / "vgg_cells", ids=["001", "002"])
    one = readers.read_folder(check.build("vgg-geojson", tmp_path), ids=["001", "002"])
    two = readers.read_folder(check.build("vgg-up2-geojson", tmp_path), ids=["001", "002"])
    for s, a, b in zip(src, one, two):
        assert a.image.shape == (256, 256, 3) and b.image.shape == (512, 512, 3)
        np.testing.assert_allclose(a.centres, s.centres, atol=1e-3)
        np.testing.assert_allclose(b.centres, 2 * s.centres + 0.5, atol=1e-3)
        # the enlarged image's pixel under a dot is the source's pixel under it, interpolated
        xs, ys = np.round(s.centres).astype(int).T
        ok = (xs < 255) & (ys < 255)
        big = b.image[2 * ys[ok], 2 * xs[ok]].astype(float)
        assert np.abs(big - s.image[ys[ok], xs[ok]]).mean() < 6
    names = {p.name for p in (tmp_path / "vgg-up2-geojson").iterdir()}
    assert {"001.png", "001.geojson"} <= names and len(names) == 401   # + .complete


def test_release_layout_variants_read_back_every_cell(tmp_path):
    """The MBM release's names (NAME_dots_000.png beside NAME_000.png) and the adipocyte
    release's images/ + annotations/ JPEG masks: every cell of the source comes back, but for
    the few nuclei marked twice within one pixel, which a dot mask cannot tell apart."""
    src = readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28")
    got = {s.id: s for s in readers.read_folder(check.build("nuclei-mbm-names", tmp_path))}
    assert set(got) == {f"{s.id}_000" for s in src}
    for s in src:
        pixels = {tuple(p) for p in np.clip(np.round(s.centres).astype(int), 0, 499)}
        assert got[f"{s.id}_000"].count == len(pixels)
    adi = check.build("vgg-adi-layout", tmp_path)
    assert sorted(p.name for p in adi.iterdir()) == [".complete", "annotations", "images"]
    got = {s.id: s for s in readers.read_folder(adi)}
    for s in readers.read_vgg_cells(SHARED / "vgg_cells"):
        inside = ((s.centres < 149.5).all(axis=1)).sum()
        assert got[s.id].count == inside and got[s.id].image.shape == (150, 150, 3)
