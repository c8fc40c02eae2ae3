"""A small study with the Python API: synthetic subjects -> store -> decode,
searchlight and permutations on a LocalCluster -> an HTML report.

Run::

    python examples/decode_study.py [OUT_DIR]
"""

import sys
from pathlib import Path

from nidecode import decode, get_client, ingest
from nidecode.analyses.permute import permute
from nidecode.analyses.searchlight import searchlight
from nidecode.report import write_report
from nidecode.synth import make_dataset

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("nidecode-example")
subjects = make_dataset(out / "data", n_subjects=2)  # Haxby layout, planted signal
ingest(subjects, out / "vt.zarr", mask="mask4_vt")  # ventral temporal ROI
ingest(subjects, out / "brain.zarr", mask="mask")  # whole (synthetic) brain

with get_client(workers=2) as client:
    summary = decode(out / "vt.zarr", out / "decode", client)
    print(summary.groupby(["class_a", "class_b"])["mean_accuracy"].mean().round(3))
    maps = searchlight(out / "brain.zarr", out / "searchlight", client, radius=6.0,
                       categories=["face", "house"])
    print(maps)
    pvalues = permute(out / "vt.zarr", out / "permute", client, n_permutations=100,
                      categories=["face", "house", "bottle", "shoe"])
    print(pvalues[["subject", "class_a", "class_b", "accuracy", "p_value"]])

for run in ("decode", "searchlight", "permute"):
    print(f"report: {write_report(out / run)}")
