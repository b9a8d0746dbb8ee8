"""The paper's printed results (Xue et al. 2016, LNCS 9913): Tables 1-4 kept as the strings it
prints (precision and spacing included) so they can be checked against its text, and the
published density counters the audit sets beside them.
"""
from __future__ import annotations

from dataclasses import dataclass

from pycount import config


CITATION = ("Xue, Ray, Hugh, Bigras: Cell Counting by Regression Using Convolutional Neural "
            "Network. ECCV 2016 Workshops, Lecture Notes in Computer Science vol. 9913, "
            "pp. 274-290")
# Page numbers are those of the published volume; the text extract we check against has none.
SOURCES = {1: "Table 1", 2: "Table 2, p. 285 of LNCS 9913", 3: "Table 3, p. 285 of LNCS 9913",
           4: "Table 4, p. 286 of LNCS 9913"}
TITLES = {2: "classification (C) vs regression (R) heads",
          3: "ResNet depth (regression head)",
          4: "comparison with other methods (The proposed = ResNet-152(R))"}
PAPER_COLUMNS = ("nuclei", "bacterial", "ki67")


@dataclass(frozen=True)
class PaperRow:
    table: int
    label: str          # the row label as printed
    model: str | None   # the pycount model it maps to; None: another method, not in pycount
    head: str           # "R" or "C"
    mre: tuple          # printed MRE per PAPER_COLUMNS
    mae: tuple          # printed "MAE±std" per PAPER_COLUMNS
    note: str = ""      # what the audit says of a row pycount does not model

    @property
    def source(self) -> str:
        return SOURCES[self.table]

    @property
    def run(self) -> str | None:
        """The run folder name (C runs get "-C")."""
        return None if self.model is None else config.run_name(self.model, self.head)


# The paper's results, as printed. Its "ResNet" in Table 2 is ResNet-50 (section 3.4).
PAPER = (
    PaperRow(2, "AlexNet(C)", "alexnet", "C", ("0.2175", "0.0918", "0.1226"),
             ("20.7636±13.9416", "12.9667±4.5361", "213.5302±65.7220")),
    PaperRow(2, "AlexNet(R)", "alexnet", "R", ("0.2019", "0.0651", "0.0959"),
             ("18.5720±12.6055", "9.2591±3.3142", "151.2059±44.6032")),
    PaperRow(2, "ResNet(C)", "resnet50", "C", ("0.2104", "0.0772", "0.1170"),
             ("19.8742±13.5217", "11.8711±3.8247", "169.5076±50.2124")),
    PaperRow(2, "ResNet(R)", "resnet50", "R", ("0.1925", "0.0539", "0.0775"),
             ("17.1437±11.5073", "8.2064±2.8515", "128.7426±40.5621")),
    PaperRow(3, "ResNet-50(R)", "resnet50", "R", ("0.1925", "0.0539", "0.0775"),
             ("17.1437±11.5073", "8.2064±2.8515", "128.7426±40.5621")),
    PaperRow(3, "ResNet-101(R)", "resnet101", "R", ("0.1845", "0.0507", "0.0697"),
             ("16.3164±10.8762", "7.7542±2.4580", "116.3076±39.0215")),
    PaperRow(3, "ResNet-152(R)", "resnet152", "R", ("0.1666", "0.0450", "0.0641"),
             ("14.9275±10.4368", "7.4741±2.2248", "108.3014±40.4698")),
    PaperRow(4, "DeepFeat [24]", None, "R", ("0.3581", "0.1751", "0.1249"),
             ("71.8046 ± 51.4109", "25.4792 ± 19.1504", "189.3559 ± 53.6329"),
             "not implemented: our copy of the paper lacks its reference list and [24] is not "
             "identified with confidence (most likely Seguí, Pujol & Vitrià, Learning to count "
             "with deep object features, CVPR Workshops 2015)"),
    PaperRow(4, "Le.count [16]", "lecount", "R", ("0.2674", "0.0208", "0.1151"),
             ("51.4479 ± 39.8087", "6.4061 ± 3.5657", "185.9391 ± 60.5042")),
    PaperRow(4, "Le.detect [5]", "ledetect", "R", ("0.3206", "0.1083", "0.1540"),
             ("33.8995 ± 23.9252", "18.1937 ± 13.4393", "259.6736 ± 85.0594")),
    PaperRow(4, "The proposed", "resnet152", "R", ("0.1666", "0.0450", "0.0641"),
             ("14.9275 ± 10.4368", "7.4741 ± 2.2248", "108.3014 ± 40.4698")),
)
# Table 1 as printed: row label, size, Ntr/Nte, AC (average cells), MinC-MaxC.
PAPER_DATASETS = {"nuclei": ("Nuclei [12]", "500× 500", "50/50", "310.22", "1–1189"),
                  "bacterial": ("Bacterial [1]", "256× 256", "100/100", "171.47", "74–317"),
                  "ki67": ("Ki67 cell", "1920×2560", "45/10", "2045.85", "70–4808")}


# Beyond the paper (issue #7): published density counters on the bacterial (VGG cells) set, tested
# on images 101-200 after training on N images drawn from 001-100; mean ± std over the draws.
PUBLISHED_DENSITY = (
    ("FCRN-A (Xie, Noble & Zisserman 2016)", "bacterial", 32, 2.9, 0.2),
    ("Count-ception (Cohen et al. 2017)", "bacterial", 50, 2.3, 0.4),
)


def split_mae(printed: str) -> tuple[float, float]:
    """"20.7636±13.9416" or "71.8046 ± 51.4109" -> (20.7636, 13.9416)."""
    mae, std = printed.split("±")
    return float(mae), float(std)
