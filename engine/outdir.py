"""The output directory of a run: its identity, partial results and final files.

Results are saved as they arrive, one small file per subject x pair under
``parts/``, each written to a temporary name and renamed, so an interrupted
run loses at most the tasks in flight. ``run.json`` records the parameters
that change the results (the run's identity) and ``"status"``: it says
``"complete"`` only once every final file is in place.

Every file name built from data (subject ids, category labels) comes from
the functions here (:func:`weights_name`, :func:`searchlight_name`, ...),
which the commands writing the files and the report reading them share.
Each string is encoded on its own by :func:`encode_part`: ``a-z``, ``0-9``
and ``-`` stay as they are (``_`` too in subject ids), an upper-case letter
gets a ``+`` before it (so names differing only in case stay distinct on a
case-insensitive file system), every other character becomes ``%XX``
escapes of its UTF-8 bytes; a reserved word (``vs``, ``mean``, Windows
device names) has its first letter escaped, and a part longer than
:data:`MAX_PART` is cut and ends with ``~`` and a hash of the whole string.
As labels never hold ``_`` once encoded and never are ``vs``, the last
``_vs_`` of a name separates its pair: names are unique and stay inside
their directory. :func:`decode_part` inverts the encoding of a part that
was not cut.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import string
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Protocol, TypeVar

import nibabel as nib
import numpy as np
import pandas as pd

from nidecode import fs, store
from nidecode.errors import NidecodeWarning, OutputDirError

MANIFEST = "run.json"
BACKGROUND = "background.nii.gz"
PARTS = "parts"
REPORT = "report.html"  # written by 'nidecode report' into a run's directory
TEMPORARY = ".nidecode-"  # prefix of a file being written (removed on resume)

MAX_PART = 64  # characters of one encoded string: three parts and the rest stay < 255 bytes
_KEPT = frozenset(string.ascii_lowercase + string.digits + "-")
_UPPER = frozenset(string.ascii_uppercase)
_HASHED = 16  # hex digits of the hash that ends a shortened part
WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                              *(f"LPT{i}" for i in range(10))})
# Words a part must not be: the separator of a pair, the prefix of group
# maps (a subject 'mean' would share the group mean map's name), devices.
_RESERVED = frozenset({"vs", "mean", "group", *(name.lower() for name in WINDOWS_RESERVED)})
_LEGACY_NAMES = ("scores.csv", "summary.csv", "group.csv", "searchlight.csv", BACKGROUND)
_LEGACY_DIRECTORIES = ("weights", "searchlight", "multiclass", "permutations",
                       "permutations/null")
_STATISTICS = {"": "", "p": "_p", "p_fwe": "_p_fwe", "accuracy": "",
               "balanced_accuracy": "_balanced_accuracy", "roc_auc": "_roc_auc",
               "accuracy_folds": "_accuracy_folds",
               "balanced_accuracy_folds": "_balanced_accuracy_folds",
               "roc_auc_folds": "_roc_auc_folds",
               "balanced_accuracy_p": "_balanced_accuracy_p",
               "balanced_accuracy_p_fwe": "_balanced_accuracy_p_fwe",
               "roc_auc_p": "_roc_auc_p", "roc_auc_p_fwe": "_roc_auc_p_fwe"}
_GROUP_STATISTICS = {"t": "_t", "p_fwe": "_p_fwe"}
#: Map-name suffix of a searchlight metric; accuracy keeps the names of old runs.
_METRIC_SUFFIX = {"accuracy": "", "balanced_accuracy": "_balanced_accuracy",
                  "roc_auc": "_roc_auc"}


class Part(Protocol):
    """A result saved on its own: a key of strings and named arrays."""

    key: tuple[str, ...]

    def to_arrays(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_arrays(cls, key: tuple[str, ...], arrays) -> Part: ...


P = TypeVar("P", bound=Part)


class OutputDir:
    """A run's output directory.

    Parameters
    ----------
    path : str or Path
        Created if missing; an fsspec URL (``s3://bucket/prefix``) puts the
        run on object storage (see ``docs/storage.md``).
    """

    def __init__(self, path: str | Path):
        self.given = str(path)  # Path("") would silently become the current directory
        self.url = self.given.rstrip("/") if fs.is_url(path) else None
        self.path = self.url or Path(fs.local(path))
        self.written: set[str] = set()  # listed in run.json before each is written
        self.manifest: dict = {}

    def start(self, identity: dict, *, overwrite: bool = False, **manifest) -> None:
        """Claim the directory for a run of this identity.

        A directory holding a run of other parameters is refused, unless
        ``overwrite``, in which case the files that run wrote are removed
        first (nothing else). A run of the same parameters keeps its saved
        parts: the new run resumes it.
        """
        self._check_path(overwrite)
        previous = self.read_manifest()
        if previous is not None and previous.get("identity") != identity:
            if not overwrite:
                changed = sorted(key for key in set(identity) | set(previous.get("identity", {}))
                                 if identity.get(key) != previous.get("identity", {}).get(key))
                raise OutputDirError(f"{self.path}: holds results of a run with other parameters "
                                     f"({', '.join(changed)}); choose another --out or pass "
                                     f"--overwrite")
            self.clear(previous)
        elif previous is not None:  # resumed: the files of the interrupted run stay listed
            self.written = set(_recorded(previous))
        if self.url is not None:  # no folders, no temporary files on object storage
            self.write_manifest({**manifest, "status": "running", "identity": identity})
            return
        try:
            (self.path / PARTS).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputDirError(f"--out {self.path}: cannot create the directory "
                                 f"({error.strerror}); give a directory path you can "
                                 f"write") from None
        # Temporary files of a killed write. A part's (parts/.nidecode-*) matches
        # both patterns: a set, so it is removed once.
        for leftover in {*self.path.rglob(f"{TEMPORARY}*"), *(self.path / PARTS).glob(".*")}:
            leftover.unlink()
        self.write_manifest({**manifest, "status": "running", "identity": identity})

    def _check_path(self, overwrite: bool) -> None:
        if not self.given.strip():
            raise OutputDirError("--out '': empty path; give an output directory")
        if self.url is not None:
            fs.check_bucket(self.url)
            if fs.isfile(self.url):
                raise OutputDirError(f"--out {self.url}: is an object, not a prefix; give a "
                                     f"new or empty prefix")
            return
        if self.path.exists() and not self.path.is_dir():
            raise OutputDirError(f"--out {self.path}: is a file, not a directory; give a new or "
                                 f"empty directory path")
        if overwrite:
            resolved, cwd = self.path.resolve(), Path.cwd().resolve()
            if resolved == Path.home().resolve() or resolved == cwd or resolved in cwd.parents:
                raise OutputDirError(f"--out {self.given}: --overwrite refused for the current "
                                     f"directory, one of its parents or the home directory; give "
                                     f"the run's own directory")

    def clear(self, manifest: dict | None = None) -> None:
        """Remove the files a run wrote here (listed in ``run.json``), and ``parts/``.

        Files the engine did not write (notes, other directories) are kept;
        directories emptied by the removal are removed.
        """
        manifest = self.read_manifest() if manifest is None else manifest
        names = {MANIFEST, REPORT, *(_recorded(manifest) if "files" in (manifest or {})
                                     else self._legacy_files())}
        if self.url is not None:
            for name in names:
                fs.remove(fs.join(self.url, name))
            fs.remove(fs.join(self.url, PARTS), recursive=True)
            return
        for name in names:
            target = self.path / name
            if target.is_file() or target.is_symlink():
                target.unlink()
        shutil.rmtree(self.path / PARTS, ignore_errors=True)
        for directory in sorted({parent for name in names
                                 for parent in PurePosixPath(name).parents
                                 if parent != PurePosixPath(".")},
                                key=lambda parent: -len(parent.parts)):
            if (self.path / directory).is_dir() and not any((self.path / directory).iterdir()):
                (self.path / directory).rmdir()

    def _legacy_files(self) -> list[str]:
        # run.json of an older nidecode lists no files: its fixed names and the
        # result files in its own sub-directories.
        if self.url is not None:
            return []  # runs on object storage all have a list
        found = [name for name in _LEGACY_NAMES if (self.path / name).is_file()]
        for directory in _LEGACY_DIRECTORIES:
            found += [path.relative_to(self.path).as_posix()
                      for path in (self.path / directory).glob("[!.]*")
                      if path.is_file() and path.name.endswith((".nii.gz", ".npy", ".csv"))]
        return found

    def read_manifest(self) -> dict | None:
        """The parsed ``run.json``, or ``None`` if there is none."""
        if self.url is not None:
            return self._read_url_manifest()
        path = self.path / MANIFEST
        if not path.exists():
            if self.path.is_dir() and any(self.path.iterdir()):
                raise OutputDirError(f"{self.path}: not empty and holds no {MANIFEST}; choose an "
                                     f"empty or new --out directory")
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            manifest = None
        if not isinstance(manifest, dict):
            raise OutputDirError(f"{path}: unreadable run manifest; remove {self.path} or choose "
                                 f"another --out")
        return manifest

    def _read_url_manifest(self) -> dict | None:
        path = fs.join(self.url, MANIFEST)
        if not fs.isfile(path):
            if fs.listdir(self.url):
                raise OutputDirError(f"{self.url}: not empty and holds no {MANIFEST}; choose an "
                                     f"empty or new --out prefix")
            return None
        try:
            manifest = json.loads(fs.read_bytes(path))
        except (UnicodeDecodeError, json.JSONDecodeError):
            manifest = None
        if not isinstance(manifest, dict):
            raise OutputDirError(f"{path}: unreadable run manifest; remove {self.url} or choose "
                                 f"another --out")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        """Write ``run.json`` atomically, with the list of files written (``"files"``)."""
        self.manifest = manifest
        files = sorted(self.written - {MANIFEST})
        self._write_atomic(MANIFEST, lambda path: path.write_text(
            json.dumps({**manifest, "files": files}, indent=2, default=_json_default,
                       allow_nan=False) + "\n"))

    def save_part(self, part: Part) -> None:
        """Save one result as it arrives (atomic)."""
        arrays = {"key": np.array(part.key), **part.to_arrays()}
        self._write_atomic(f"{PARTS}/{_part_name(part.key)}",
                           lambda path: np.savez(path, **arrays))

    def load_parts(self, part_type: type[P]) -> dict[tuple[str, ...], P]:
        """Every saved result, by key.

        A part that cannot be read (truncated, garbage) is removed with a
        warning naming it: it is computed again.
        """
        if self.url is not None:
            return self._load_url_parts(part_type)
        parts = {}
        for path in sorted((self.path / PARTS).glob("[!.]*.npz")):
            try:
                # The file is opened here so that it is closed when np.load fails.
                with open(path, "rb") as handle, np.load(handle) as arrays:
                    key = tuple(str(name) for name in arrays["key"])
                    parts[key] = part_type.from_arrays(key, arrays)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                warnings.warn(f"{path}: unreadable saved result ({type(error).__name__}); it is "
                              f"removed and computed again", NidecodeWarning, stacklevel=2)
                path.unlink(missing_ok=True)
        return parts

    def _load_url_parts(self, part_type: type[P]) -> dict[tuple[str, ...], P]:
        parts = {}
        folder = fs.join(self.url, PARTS)
        for name in fs.listdir(folder):
            if name.startswith(".") or not name.endswith(".npz"):
                continue
            path = fs.join(folder, name)
            try:
                with np.load(io.BytesIO(fs.read_bytes(path))) as arrays:
                    key = tuple(str(item) for item in arrays["key"])
                    parts[key] = part_type.from_arrays(key, arrays)
            except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                warnings.warn(f"{path}: unreadable saved result ({type(error).__name__}); it is "
                              f"removed and computed again", NidecodeWarning, stacklevel=3)
                fs.remove(path)
        return parts

    def write_table(self, name: str, table: pd.DataFrame) -> None:
        """Write a CSV table (atomic)."""
        self._write_atomic(name, lambda path: table.to_csv(path, index=False))

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Write a ``.npy`` array (atomic)."""
        self._write_atomic(name, lambda path: np.save(path, array))

    def reserve(self, names: Iterable[str]) -> None:
        """List files about to be written in ``run.json`` with one write of it.

        Each file is otherwise listed by a write of ``run.json`` of its own;
        once reserved, the files can be written in any order, from threads.
        """
        new = set(names) - self.written - {MANIFEST}
        if new:
            self.written |= new
            self.write_manifest(self.manifest)

    def write_image(self, name: str, image) -> None:
        """Write a NIfTI image (atomic); ``name`` may hold sub-directories."""
        self._write_atomic(name, image.to_filename)

    def write_background(self, store_path: str, subject: str,
                         checksum: str | None = None) -> str | None:
        """Write the subject's mean EPI as ``background.nii.gz`` (for the report's maps).

        ``checksum`` pins the subject's version the run planned with. Returns
        the name to record as ``"background"`` in ``run.json``, or ``None``
        when the store has no mean EPI (trial betas).
        """
        mean = store.read_mean_volume(store_path, subject, checksum)
        if mean is None:
            return None
        _, affine = store.read_geometry(store_path, subject, checksum)
        self.write_image(BACKGROUND, nib.Nifti1Image(mean, affine))
        return BACKGROUND

    def _write_atomic(self, name: str, write: Callable[[Path], object]) -> None:
        if not name.startswith(f"{PARTS}/") and name != MANIFEST and name not in self.written:
            # Listed before it is written: --overwrite finds it even after a kill.
            self.written.add(name)
            self.write_manifest(self.manifest)
        if self.url is not None:
            fs.put_atomic(fs.join(self.url, name), write)
        else:
            write_atomic(self.path / name, write)


def write_atomic(target: Path, write: Callable[[Path], object]) -> Path:
    """Write a file through ``write(temporary_path)`` and rename it to ``target``.

    A reader never sees half a file. The temporary file keeps the target's
    suffixes (numpy and nibabel choose the format from them) and starts with
    a dot (never loaded); the file ends with the mode the umask gives new
    files (0644 under umask 022), not the 0600 of ``tempfile.mkstemp``.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=TEMPORARY,
                                         suffix="".join(target.suffixes))
    os.close(handle)
    try:
        os.chmod(temporary, 0o666 & ~current_umask())
        write(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return target


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it
    os.umask(mask)
    return mask


def _recorded(manifest: dict | None) -> list[str]:
    files = (manifest or {}).get("files", [])
    return [name for name in files if isinstance(name, str) and _is_own(name)]


def _is_own(name: str) -> bool:
    # A name read from run.json could be edited: only relative names below the directory.
    path = PurePosixPath(name)
    return bool(name) and "\\" not in name and not path.is_absolute() and ".." not in path.parts


def encode_part(text: str, *, subject: bool = False) -> str:
    """Encode one string (a label or subject id) as a safe piece of a file name.

    Parameters
    ----------
    text : str
        Any string, including ``/``, ``..``, control characters, lone
        surrogates (undecodable bytes of a file name) or thousands of characters.
    subject : bool
        Keep ``_`` as is (subject ids such as ``haxby2001_slice``); category
        labels escape it so that ``{a}_vs_{b}`` is unambiguous.

    Returns
    -------
    str
        Non-empty, at most :data:`MAX_PART` characters of ``[A-Za-z0-9-+%~]``
        (and ``_`` for subjects); distinct strings give names that differ
        even ignoring case. ``"face"`` stays ``"face"``.
    """
    if text == "":
        return "%"  # a lone '%' is no escape: only the empty string gives it
    kept = _KEPT | {"_"} if subject else _KEPT
    pieces = []
    for character in text:
        if character in kept:
            pieces.append(character)
        elif character in _UPPER:
            pieces.append("+" + character)
        else:
            pieces.extend(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))
    if text in _RESERVED:
        pieces[0] = f"%{ord(text[0]):02X}"
    encoded = "".join(pieces)
    if len(encoded) <= MAX_PART:
        return encoded
    return _shorten(pieces, text)


def _shorten(pieces: list[str], text: str) -> str:
    # Whole characters of the start, then '~' (escaped in any input) and a hash.
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASHED]
    room, start = MAX_PART - _HASHED - 1, []
    for piece in pieces:
        if len(piece) > room:
            break
        start.append(piece)
        room -= len(piece)
    return "".join(start) + "~" + digest


def decode_part(encoded: str) -> str:
    """The string :func:`encode_part` encoded (not for a part shortened with ``~``)."""
    if "~" in encoded:
        raise ValueError(f"{encoded!r}: shortened with a hash; the string is not in the name")
    if encoded == "%":
        return ""
    data, index = bytearray(), 0
    while index < len(encoded):
        if encoded[index] == "%":
            data.append(int(encoded[index + 1:index + 3], 16))
            index += 3
        else:
            data.extend(encoded[index + (encoded[index] == "+")].encode())
            index += 1 + (encoded[index] == "+")
    return data.decode("utf-8", "surrogatepass")


def pair_stem(class_a: str, class_b: str) -> str:
    """``{class_a}_vs_{class_b}``, each label encoded."""
    return f"{encode_part(class_a)}_vs_{encode_part(class_b)}"


def _subject_pair(subject: str, class_a: str, class_b: str) -> str:
    return f"{encode_part(subject, subject=True)}_{pair_stem(class_a, class_b)}"


def weights_name(subject: str, class_a: str, class_b: str) -> str:
    """``weights/{subject}_{class_a}_vs_{class_b}.nii.gz``: a pair's fold-mean SVM weights."""
    return f"weights/{_subject_pair(subject, class_a, class_b)}.nii.gz"


def patterns_name(subject: str, class_a: str, class_b: str) -> str:
    """``patterns/{subject}_{class_a}_vs_{class_b}.nii.gz``: the weights' activation pattern."""
    return f"patterns/{_subject_pair(subject, class_a, class_b)}.nii.gz"


def searchlight_name(subject: str, class_a: str, class_b: str, statistic: str = "") -> str:
    """``searchlight/{subject}_{class_a}_vs_{class_b}{_statistic}.nii.gz``.

    ``statistic``: ``""`` or ``"accuracy"`` (the accuracy map),
    ``"balanced_accuracy"`` or ``"roc_auc"`` (that metric's map), ``"{metric}_folds"``
    (a metric's fold scores, 4D), ``"p"`` or ``"p_fwe"`` (permutation p-values),
    ``"{metric}_p"`` or ``"{metric}_p_fwe"`` (those of balanced accuracy or AUC).
    """
    stem = _subject_pair(subject, class_a, class_b)
    return f"searchlight/{stem}{_STATISTICS[statistic]}.nii.gz"


def cross_pair_stem(class_a: str, class_b: str, test_a: str, test_b: str) -> str:
    """``{class_a}_vs_{class_b}_on_{test_a}_vs_{test_b}``: a cross-decoding pair (trained on
    the first, tested on the second), each label encoded (``_`` is escaped in labels, so the
    name is unambiguous)."""
    return f"{pair_stem(class_a, class_b)}_on_{pair_stem(test_a, test_b)}"


def cross_searchlight_name(subject: str, class_a: str, class_b: str, test_a: str,
                           test_b: str, statistic: str = "") -> str:
    """``searchlight/{subject}_{class_a}_vs_{class_b}_on_{test_a}_vs_{test_b}{_statistic}.nii.gz``.

    A cross-decoding searchlight's map (trained on ``class_a`` vs ``class_b``, tested on
    ``test_a`` vs ``test_b``); ``statistic`` as for :func:`searchlight_name`.
    """
    stem = (f"{encode_part(subject, subject=True)}_"
            f"{cross_pair_stem(class_a, class_b, test_a, test_b)}")
    return f"searchlight/{stem}{_STATISTICS[statistic]}.nii.gz"


def cross_group_map_name(class_a: str, class_b: str, test_a: str, test_b: str,
                         statistic: str, metric: str = "accuracy") -> str:
    """:func:`group_map_name` of a cross-decoding pair: ``searchlight/mean_{cross pair}
    [_{metric}].nii.gz`` or ``group_{cross pair}[_{metric}]_{t|p_fwe}.nii.gz``."""
    stem = cross_pair_stem(class_a, class_b, test_a, test_b) + _METRIC_SUFFIX[metric]
    if statistic == "mean":
        return f"searchlight/mean_{stem}.nii.gz"
    return f"searchlight/group_{stem}{_GROUP_STATISTICS[statistic]}.nii.gz"


def sphere_size_name(subject: str) -> str:
    """``searchlight/{subject}_sphere_size.nii.gz``: voxels per sphere."""
    return f"searchlight/{encode_part(subject, subject=True)}_sphere_size.nii.gz"


def group_map_name(class_a: str, class_b: str, statistic: str, metric: str = "accuracy") -> str:
    """Across subjects: ``searchlight/mean_{pair}[_{metric}].nii.gz`` or
    ``group_{pair}[_{metric}]_{t|p_fwe}.nii.gz`` (no metric suffix for accuracy)."""
    stem = pair_stem(class_a, class_b) + _METRIC_SUFFIX[metric]
    if statistic == "mean":
        return f"searchlight/mean_{stem}.nii.gz"
    return f"searchlight/group_{stem}{_GROUP_STATISTICS[statistic]}.nii.gz"


def null_name(subject: str, class_a: str, class_b: str, *, searchlight: bool = False,
              metric: str = "accuracy") -> str:
    """``permutations/null/{subject}_{class_a}_vs_{class_b}[_searchlight][_{metric}].npy``.

    ``metric``: a metric name (no suffix for accuracy, the null of old runs).
    """
    suffix = "" if metric == "accuracy" else f"_{_METRIC_SUFFIXES[metric]}"
    return f"permutations/null/{_subject_pair(subject, class_a, class_b)}" \
           f"{'_searchlight' if searchlight else ''}{suffix}.npy"


# Fixed suffixes (never data): the names of nidecode._validation.METRICS.
_METRIC_SUFFIXES = {"balanced_accuracy": "balanced_accuracy", "roc_auc": "roc_auc"}


def confusion_name(subject: str) -> str:
    """``multiclass/confusion_{subject}.csv``: a subject's multiclass confusion matrix."""
    return f"multiclass/confusion_{encode_part(subject, subject=True)}.csv"


def _part_name(key: tuple[str, ...]) -> str:
    # Hash the key: subject ids and category names may hold any character.
    return hashlib.sha1("\0".join(key).encode()).hexdigest()[:20] + ".npz"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | Path):
        return value.tolist() if isinstance(value, np.ndarray) else str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


#: The directory, inside ``OUT``, of a run of ``nidecode group`` (its own run.json and parts).
GROUP_DIRECTORY = "group"
#: ``clusters.csv`` of ``nidecode group``: every method's clusters, one row each.
GROUP_CLUSTERS = "clusters.csv"
# Fixed vocabularies (never data): the methods and the maps each writes.
_INFERENCE_MAPS = {"stelzer": ("mean", "p_fwe"), "tfce": ("tfce", "p_fwe"),
                   "prevalence": ("gamma", "p", "p_fwe")}


def inference_map_name(class_a: str, class_b: str, method: str, statistic: str) -> str:
    """``{class_a}_vs_{class_b}_{method}_{statistic}.nii.gz``, inside :data:`GROUP_DIRECTORY`.

    ``method``: ``stelzer`` (``statistic`` ``mean``: the mean accuracy, or
    ``p_fwe``), ``tfce`` (``tfce`` or ``p_fwe``) or ``prevalence`` (``gamma``:
    the prevalence bound, ``p`` or ``p_fwe`` of the global null).
    """
    if statistic not in _INFERENCE_MAPS[method]:
        raise ValueError(f"{method!r} writes no {statistic!r} map")
    return f"{pair_stem(class_a, class_b)}_{method}_{statistic}.nii.gz"
