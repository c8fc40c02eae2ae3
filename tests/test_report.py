"""The HTML report: built from a real decode, self-contained, and rendered by Chromium."""

import base64
import io
import json
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nidecode.errors import InputError
from nidecode.report import write_report
from nidecode.stats import confusion_matrix_table, group_test

CATEGORIES = ["face", "house", "cat"]
P_VALUES = [0.001, 0.0004, 0.3, 0.02, 0.6, 0.001]  # one per subject x pair of the summary


class PageParser(HTMLParser):
    """Collects the elements, attributes and text of a page."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def attributes(self, tag: str, name: str) -> list[str]:
        return [attrs[name] for found, attrs in self.tags if found == tag and name in attrs]


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def add_study_extras(out: Path, summary: pd.DataFrame) -> None:
    """Hand-made results in the documented formats, next to the decode's own files."""
    pvalues = summary[["subject", "class_a", "class_b"]].assign(
        accuracy=summary["mean_accuracy"], p_value=P_VALUES, n_permutations=999)
    (out / "permutations").mkdir()
    pvalues.to_csv(out / "permutations" / "pvalues.csv", index=False)

    true = np.repeat(["cat", "face", "house"], 12)
    predicted = true.copy()
    predicted[[0, 1, 13, 30]] = ["face", "house", "cat", "face"]
    shutil.rmtree(out / "multiclass", ignore_errors=True)  # the decode's own: replaced
    (out / "multiclass").mkdir()
    confusion_matrix_table(true, predicted, ["cat", "face", "house"]).to_csv(
        out / "multiclass" / "confusion_subj1.csv")

    group = [{"class_a": class_a, "class_b": class_b, **group_test(rows["mean_accuracy"])}
             for (class_a, class_b), rows in summary.groupby(["class_a", "class_b"])]
    pd.DataFrame(group).rename(columns={"mean": "mean_accuracy", "n": "n_subjects"})[
        ["class_a", "class_b", "mean_accuracy", "t", "p_value", "n_subjects"]].to_csv(
        out / "group.csv", index=False)

    weights = nib.load(out / "weights" / "subj1_face_vs_house.nii.gz")
    accuracy = np.where(weights.get_fdata() != 0, 0.5 + 3 * np.abs(weights.get_fdata()), 0)
    (out / "searchlight").mkdir()
    nib.save(nib.Nifti1Image(accuracy.astype(np.float32), weights.affine),
             out / "searchlight" / "subj1_face_vs_house_accuracy.nii.gz")


def make_bench_dir(directory: Path) -> Path:
    directory.mkdir()
    figure = Figure(figsize=(4, 3))
    FigureCanvasAgg(figure)
    figure.add_subplot().plot([1, 2, 4], [8.0, 4.3, 2.4], "o-")
    figure.savefig(directory / "scaling.png")
    rows = [{"workers": 1, "seconds": 8.0}, {"workers": 2, "seconds": 4.3},
            {"workers": 4, "seconds": 2.4}]
    (directory / "bench.json").write_text(json.dumps(rows))
    return directory


@pytest.fixture(scope="module")
def decoded_study(tmp_path_factory, client):
    """A real decode of 2 synthetic subjects x 3 pairs, plus hand-made extra results."""
    from nilearn.image import mean_img

    from nidecode.analyses.decode import decode
    from nidecode.ingest import ingest
    from nidecode.synth import make_dataset

    root = tmp_path_factory.mktemp("report")
    subject_dirs = make_dataset(root / "data", n_subjects=2)
    ingest(subject_dirs, root / "study.zarr", "mask4_vt")
    summary = decode(root / "study.zarr", root / "out", client, categories=CATEGORIES,
                     progress=False)
    add_study_extras(root / "out", summary)
    anat = root / "mean_epi.nii.gz"
    nib.save(mean_img(subject_dirs[0] / "bold.nii.gz", copy_header=True), anat)
    bench_dir = make_bench_dir(root / "bench")
    report = write_report(root / "out", anat=anat, bench_dir=bench_dir)
    return {"root": root, "out": root / "out", "summary": summary, "report": report,
            "anat": anat, "bench_dir": bench_dir}


# bars, confusion of subj1, weights and patterns of subj1 (3 pairs), 1 searchlight map, the
# mask, bench
EXPECTED_IMAGES = 1 + 1 + 3 * 2 + 1 + 1 + 1
SECTIONS = ["parameters", "accuracy", "permutations", "group", "confusion", "weights",
            "searchlight", "mask", "scaling"]


def test_report_is_one_self_contained_file(decoded_study):
    report = decoded_study["report"]
    assert report == decoded_study["out"] / "report.html"
    page = parse(report)
    sources = page.attributes("img", "src")
    assert len(sources) == EXPECTED_IMAGES
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert not [tag for tag, _ in page.tags if tag in {"script", "link", "iframe", "object"}]
    assert all(href.startswith("#") for href in page.attributes("a", "href"))
    assert page.attributes("section", "id") == SECTIONS
    assert sorted(href[1:] for href in page.attributes("a", "href")) == sorted(SECTIONS)


def test_report_shows_the_values_of_every_result(decoded_study):
    summary = decoded_study["summary"]
    text = " ".join(parse(decoded_study["report"]).text)
    assert "2 subject(s), 3 categories (cat, face, house), 3 pair(s)" in text
    assert "leave-one-run-out cross-validation" in text
    for row in summary.itertuples():  # every accuracy, in the matrix and the long table
        assert text.count(f"{row.mean_accuracy:.3f}") >= 2
    assert f"{summary['mean_accuracy'].mean():.3f} over subjects and pairs" in text
    for p_value in ("p = 0.001", "p = 4.0e-04", "p = 0.300", "p = 0.020", "p = 0.600"):
        assert p_value in text
    assert "4 of 6 subject × pair accuracies have p ≤ 0.05" in text
    group = pd.read_csv(decoded_study["out"] / "group.csv")
    for row in group.itertuples():
        assert f"{row.t:.2f}" in text
    assert "subj1: accuracy 0.889 (chance 0.333)" in text  # 32 of 36 on the diagonal
    assert "Fold-mean linear SVM weights of subj1, 3 of its 3 pairs" in text
    assert "subj1: face vs house (red: house, blue: face), weights" in text
    assert "subj1: face vs house (red: house, blue: face), pattern" in text
    assert "its activation pattern (patterns/: Cov(X) w / Var(Xw)" in text
    assert f"Background: {decoded_study['anat']}." in text
    assert "searchlight/subj1_face_vs_house_accuracy.nii.gz (accuracy above 0.5)" in text
    assert "the mask of subj1 in the store" in text
    assert "scaling.png" in text and "workers" in text


def test_report_limits_the_brain_figures_and_says_so(decoded_study, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(decoded_study["out"], out)
    page = parse(write_report(out, max_figures=1))
    text = " ".join(page.text)
    assert "Fold-mean linear SVM weights of subj1, 1 of its 3 pairs" in text
    assert "Background: background.nii.gz (the first subject's mean EPI" in text
    # 1 weight map and its pattern, no bench
    assert len(page.attributes("img", "src")) == EXPECTED_IMAGES - 2 * 2 - 1


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium not found: install it (Debian: apt-get install -y chromium) to "
                    "check the report in a browser; CI installs it")
    return path


def _run_chromium(chromium: str, profile: Path, *arguments: str) -> str:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--virtual-time-budget=10000", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


# Written into the page under test only: counts the images the browser could not decode.
IMAGE_CHECK = """
<img id="control" src="data:image/png;base64,AAAA" alt="broken on purpose">
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(image => !image.complete || image.naturalWidth === 0);
  const marker = document.createElement("pre");
  marker.id = "image-check";
  marker.textContent = `total=${images.length} broken=${broken.map(image => image.alt)}`;
  document.body.appendChild(marker);
});
</script>
"""


def test_every_image_loads_in_chromium(decoded_study, tmp_path):
    chromium = _chromium()
    page = tmp_path / "checked.html"
    page.write_text(decoded_study["report"].read_text().replace("</body>",
                                                                IMAGE_CHECK + "</body>"))
    dom = _run_chromium(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    check = re.search(r'<pre id="image-check">(.*?)</pre>', dom)
    assert check is not None, "the page did not finish loading"
    # Only the control image, broken on purpose, fails: every figure of the report decodes.
    assert check.group(1) == f"total={EXPECTED_IMAGES + 1} broken=broken on purpose"
    assert all(f'id="{anchor}"' in dom for anchor in SECTIONS)


def test_report_screenshot_is_a_rendered_page(decoded_study, tmp_path):
    chromium = _chromium()
    screenshot = tmp_path / "report.png"
    _run_chromium(chromium, tmp_path / "profile", f"--screenshot={screenshot}",
                  "--window-size=1280,4000", decoded_study["report"].as_uri())
    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[:2] == (4000, 1280)
    # The header band is dark blue, the figures add colour: far from a blank page.
    assert pixels[:60, :, :3].mean() < 0.4
    assert pixels[..., :3].std() > 0.1


# --- hand-made output directories: no cluster needed ----------------------------------------


def _minimal_run(out: Path, **manifest) -> Path:
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"status": "complete",
                                              "parameters": {"cv": "kfold:4", "C": 0.5},
                                              **manifest}))
    pd.DataFrame({"subject": ["01", "01"], "class_a": ["cat", "cat"],
                  "class_b": ["face", "house"], "mean_accuracy": [0.75, 0.5],
                  "std_accuracy": [0.1, 0.05], "n_folds": [4, 4]}).to_csv(
        out / "summary.csv", index=False)
    return out


def test_report_of_a_minimal_run(tmp_path):
    out = _minimal_run(tmp_path / "out", background=str(tmp_path / "gone.nii.gz"))
    weights = np.zeros((4, 4, 3), np.float32)
    weights[1:3, 1:3, 1] = [[0.2, -0.1], [0.05, -0.3]]
    (out / "weights").mkdir()
    nib.save(nib.Nifti1Image(weights, np.diag([3.0, 3.0, 3.0, 1.0])),
             out / "weights" / "01_cat_vs_face.nii.gz")
    page = parse(write_report(out))
    text = " ".join(page.text)
    assert page.attributes("section", "id") == ["parameters", "accuracy", "weights"]
    assert "01" in page.text  # subject ids stay text: "01", not 1
    assert f"run.json names the background {tmp_path / 'gone.nii.gz'}, which is not found" \
        in text
    assert "4-fold cross-validation (no shuffling)" in text
    assert "highest cat vs face (0.750), lowest cat vs house (0.500)" in text
    assert "SD across folds" in text  # a single subject: error bars over folds


def test_report_warns_about_an_incomplete_run(tmp_path):
    out = _minimal_run(tmp_path / "out", status="running")
    assert "Run status: running: the results may be incomplete." in " ".join(
        parse(write_report(out)).text)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("summary.csv", "subject,class_a,mean_accuracy\n01,cat,0.5\n", "missing column"),
    ("group.csv", "class_a,class_b,mean_accuracy,t,p_value,n_subjects\ncat,face,high,1,0.1,3\n",
     "non-numeric"),
    ("multiclass/confusion_01.csv", "true,cat,face\ncat,3,1\n", "not a square"),
    ("permutations/pvalues.csv", "subject,class_a\n01,cat\n", "p_value"),
])
def test_malformed_files_are_input_errors_naming_the_file(tmp_path, name, content, message):
    out = _minimal_run(tmp_path / "out")
    (out / name).parent.mkdir(exist_ok=True)
    (out / name).write_text(content)
    with pytest.raises(InputError, match=message) as error:
        write_report(out)
    assert str(out / name) in str(error.value)


def test_missing_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="run.json: not found"):
        write_report(tmp_path)
    out = _minimal_run(tmp_path / "out")
    with pytest.raises(InputError, match="background image not found"):
        write_report(out, anat=tmp_path / "no_anat.nii.gz")
    with pytest.raises(InputError, match="benchmark directory not found"):
        write_report(out, bench_dir=tmp_path / "no_bench")


def test_a_single_slice_is_drawn_as_one_plane_not_three_empty_cuts():
    from nidecode.report.figures import _cuts, brain_map

    affine = np.diag([-3.5, 3.75, 3.75, 1.0])
    affine[:3, 3] = [40.0, -60.0, 12.0]
    one_slice = nib.Nifti1Image(np.random.default_rng(0).random((20, 24, 1)), affine)
    assert _cuts(one_slice) == {"display_mode": "z", "cut_coords": [12.0]}
    assert _cuts(nib.Nifti1Image(np.zeros((20, 24, 10)), affine)) == {}
    png = brain_map(one_slice, "one slice", above=0.5)
    height, width = matplotlib.image.imread(io.BytesIO(png)).shape[:2]
    assert width / height < 1.5  # one plane, not a strip of three cuts


def test_infinite_values_are_drawn_at_the_end_of_the_scale_not_as_zeros():
    from nidecode.report.figures import _finite, brain_map

    values = np.zeros((6, 6, 6))
    values[2, 2, 2], values[3, 3, 3], values[1, 1, 1] = np.inf, 4.0, np.nan
    shown = _finite(nib.Nifti1Image(values, np.eye(4))).get_fdata()
    assert (shown[2, 2, 2], shown[3, 3, 3], shown[1, 1, 1]) == (4.0, 4.0, 0.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Non-finite values")  # nilearn's
        brain_map(nib.Nifti1Image(values, np.eye(4)), "t")
