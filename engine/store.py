"""The Zarr store: the only module that knows its layout.

Layout (Zarr v3)::

    STORE/                      root group, attrs {"nidecode_format": 1}
      {subject}/                one group per subject, attrs below
        X        float32 (scans x voxels), chunked along voxels
        labels   int16 (scans,), codes into attrs["categories"]
        runs     int64 (scans,); int32 in stores written before, read alike
        mask     bool (x, y, z)
        mean     float32 (x, y, z), the mean EPI (absent for trial betas)

Subject attributes: ``affine`` (4 x 4), ``categories``, ``cleaning`` (the
settings used), ``source`` (input files), ``checksum`` (SHA-256 of X) and
``complete`` (written last). A subject is written as a new version under
``.versions/`` and published by atomically swapping the symlink
``{subject}`` to it, so a reader sees either the previous complete subject
or the new one, never a half-written group.

On object storage (a store at an fsspec URL, see ``docs/storage.md``)
there is no symlink: the version is published by writing the small
pointer object ``.subjects/{subject}.json`` (``{"version": name}``) last,
in one PUT, which object stores make visible atomically; readers resolve
the pointer. A local store keeps its symlinks (stores written before read
alike).

A run reads the version it planned with: reads given the subject's
checksum (``verify``, ``checksum``) open the version holding that checksum,
even after the subject was re-ingested. A replaced version therefore stays
in ``.versions/`` and is swept ``ORPHAN_AGE_S`` after its replacement; a
run still reading it then fails with one line instead of mixing versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from nidecode import fs
from nidecode.errors import InputError, StoreError

FORMAT_VERSION = 1
VOXEL_CHUNK = 256
_VERSIONS = ".versions"
_POINTERS = ".subjects"  # the published version of each subject, in a store at a URL
ORPHAN_AGE_S = 24 * 3600


@dataclass(frozen=True)
class Design:
    """What the plan needs of a subject, without its data."""

    subject: str
    labels: np.ndarray  # str, (n_scans,)
    runs: np.ndarray  # int, (n_scans,)
    n_voxels: int
    checksum: str
    version: str = ""  # the version directory read (under .versions/)


def checksum(X: np.ndarray) -> str:
    """SHA-256 of the stored time series (float32, C order)."""
    return hashlib.sha256(np.ascontiguousarray(X, dtype=np.float32).tobytes()).hexdigest()


def check_subject_id(subject: str, source: str | Path | None = None) -> None:
    """Refuse a subject id that is not a plain name in the store's root.

    The id is the name of the subject's symlink in the store, beside the
    store's own ``zarr.json`` and its hidden ``.versions`` and ``.link-*``
    entries: it must be non-empty, must not start with a dot, hold a path
    separator or a control character, nor be ``zarr.json``.

    Parameters
    ----------
    subject : str
    source : str or Path, optional
        Where the id comes from (a subject directory), named in the message.
    """
    reason = None
    if not subject or subject.startswith("."):
        reason = "an empty name or one starting with '.' is the store's own or a hidden entry"
    elif any(separator in subject for separator in "/\\") or not subject.isprintable():
        reason = "a subject id is one file name: no path separator or control character"
    elif subject.lower() == "zarr.json":
        reason = "zarr.json holds the store's own metadata"
    if reason is not None:
        where = f"{source}: " if source is not None else ""
        raise InputError(f"{where}subject id {subject!r}: {reason}; rename the subject "
                         f"(its directory) to a plain name such as sub01")


def create_store(path: str | Path) -> zarr.Group:
    """Open a store for writing, creating it if needed, and check its format."""
    if fs.is_url(path):
        return _create_url_store(str(path))
    path = Path(fs.local(path))
    if path.exists() and not (path / "zarr.json").exists():
        raise StoreError(f"{path}: exists but is not a nidecode store; give a new or "
                         f"an existing store path")
    root = zarr.open_group(str(path), mode="a")
    if "nidecode_format" not in root.attrs:
        root.attrs["nidecode_format"] = FORMAT_VERSION
    _check_format(root, path)
    _sweep_orphans(path)
    return root


def write_subject(path: str | Path, subject: str, X: np.ndarray, labels: np.ndarray,
                  runs: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                  cleaning: dict, source: dict, mean_volume: np.ndarray | None = None) -> None:
    """Write (or atomically replace) one subject's group.

    Parameters
    ----------
    path : str or Path
        Local store path (created if missing).
    subject : str
        Subject id; its group name.
    X : numpy.ndarray, shape (n_scans, n_voxels)
        Cleaned masked time series, stored as float32.
    labels : numpy.ndarray of str, shape (n_scans,)
    runs : numpy.ndarray of int, shape (n_scans,)
    mask : numpy.ndarray of bool, 3D
        The mask whose voxels (in C order) are the columns of ``X``.
    affine : numpy.ndarray, shape (4, 4)
    cleaning, source : dict
        JSON-serialisable settings and input file names, kept as attributes.
    mean_volume : numpy.ndarray, 3D, optional
        The mean EPI (the raw BOLD averaged over scans), a background for maps.
    """
    check_subject_id(subject)
    path = path if fs.is_url(path) else Path(fs.local(path))
    if fs.is_url(path):
        _create_url_store(path, only=subject)  # each listing costs requests: its versions
    else:
        create_store(path)
    X = np.ascontiguousarray(X, dtype=np.float32)
    categories, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    name = f"{subject}-{uuid.uuid4().hex}"
    version = fs.join(path, _VERSIONS, name)
    group = _open_group(version, mode="w")
    group.create_array("X", data=X, chunks=(X.shape[0], min(VOXEL_CHUNK, X.shape[1])))
    group.create_array("labels", data=codes.astype(np.int16))
    group.create_array("runs", data=np.asarray(runs, dtype=np.int64))
    group.create_array("mask", data=np.asarray(mask, dtype=bool))
    if mean_volume is not None:
        group.create_array("mean", data=np.asarray(mean_volume, dtype=np.float32))
    group.attrs.update({
        "subject": subject,
        "affine": np.asarray(affine, dtype=float).tolist(),
        "categories": categories.tolist(),
        "cleaning": cleaning,
        "source": source,
        "checksum": checksum(X),
        "nidecode_format": FORMAT_VERSION,
        "complete": True,
    })
    if fs.is_url(path):
        # Written last, in one PUT: the subject is visible once complete.
        fs.write_bytes(_pointer(path, subject), json.dumps({"version": name}).encode())
    else:
        _publish(version, path / subject)


def _open_group(location: str | Path, mode: str) -> zarr.Group:
    """A Zarr group at a local path or a URL (with this process's storage options)."""
    if not fs.is_url(location):
        return zarr.open_group(str(location), mode=mode)
    with fs.translated(location):
        return zarr.open_group(str(location), mode=mode, storage_options=fs.storage_options())


def _pointer(path: str, subject: str) -> str:
    return fs.join(path, _POINTERS, f"{subject}.json")


def _create_url_store(url: str, only: str | None = None) -> zarr.Group:
    fs.check_bucket(url)
    if fs.exists(url) and not fs.isfile(fs.join(url, "zarr.json")):
        raise StoreError(f"{url}: exists but is not a nidecode store; give a new or an "
                         f"existing store URL")
    root = _open_group(url, mode="a")
    if "nidecode_format" not in root.attrs:
        root.attrs["nidecode_format"] = FORMAT_VERSION
    _check_format(root, url)
    _sweep_url_orphans(url, only)
    return root


def _published_version(path: str, subject: str) -> str | None:
    """The version a URL store's pointer names for ``subject``, or ``None``."""
    content = fs.read_bytes_if_any(_pointer(path, subject))
    try:
        record = json.loads(content) if content is not None else None
    except ValueError:  # not JSON: no valid pointer
        return None
    version = record.get("version") if isinstance(record, dict) else None
    valid = isinstance(version, str) and version.startswith(f"{subject}-") \
        and len(version) == len(subject) + 33
    return version if valid else None


def _sweep_url_orphans(url: str, only: str | None = None) -> None:
    # As _sweep_orphans, without symlinks or mtimes to touch: a version no
    # pointer names is removed once it is old and, if it was replaced, its
    # subject's pointer too (the replacement's age). ``only``: that subject's.
    for name in fs.listdir(fs.join(url, _VERSIONS)):
        subject = name[:-33]
        if len(name) < 34 or (only is not None and subject != only) \
                or name == _published_version(url, subject):
            continue
        try:
            stale = fs.age(fs.join(url, _VERSIONS, name, "zarr.json")) > ORPHAN_AGE_S
            pointer_stale = (not fs.isfile(_pointer(url, subject))
                             or fs.age(_pointer(url, subject)) > ORPHAN_AGE_S)
        except (FileNotFoundError, InputError):
            continue  # being written, or listed then removed by another sweep
        if stale and pointer_stale:
            fs.remove(fs.join(url, _VERSIONS, name), recursive=True)


def _publish(version: Path, target: Path) -> None:
    # The subject's group is a relative symlink to a complete version;
    # os.replace swaps the link atomically, so readers (and ingests of other
    # subjects running in parallel) never see a half-written group.
    link = target.with_name(f".link-{uuid.uuid4().hex}")
    os.symlink(os.path.join(_VERSIONS, version.name), link)
    previous = os.readlink(target) if target.is_symlink() else None
    os.replace(link, target)
    if previous is not None and (target.parent / previous).is_dir():
        # Not deleted: runs planned on it may still be reading it. Its age
        # now counts from its replacement, and _sweep_orphans removes it.
        os.utime(target.parent / previous)


def _sweep_orphans(path: Path) -> None:
    # Versions left by killed ingests are never linked, replaced versions no
    # longer; remove them once old enough not to belong to an ingest or a
    # run still going (a replaced version's age counts from its replacement).
    versions = path / _VERSIONS
    if not versions.is_dir():
        return
    linked = {os.readlink(entry) for entry in path.iterdir() if entry.is_symlink()}
    for entry in versions.iterdir():
        stale = time.time() - entry.stat().st_mtime > ORPHAN_AGE_S
        if stale and os.path.join(_VERSIONS, entry.name) not in linked:
            shutil.rmtree(entry, ignore_errors=True)


def _check_format(root: zarr.Group, path: str | Path) -> None:
    version = root.attrs.get("nidecode_format")
    if version != FORMAT_VERSION:
        raise StoreError(f"{path}: store format {version!r}, this nidecode reads format "
                         f"{FORMAT_VERSION}; ingest the subjects again into a new store")


def open_store(path: str | Path) -> zarr.Group:
    """Open an existing store read-only (a local path or an fsspec URL)."""
    text = fs.local(path)
    if fs.is_url(text):
        return _open_url_store(text)
    if not fs.isfile(fs.join(text, "zarr.json")):
        raise StoreError(f"{path}: not a nidecode store; create one with 'nidecode ingest'")
    try:
        root = _open_group(text, mode="r")
    except InputError:
        raise
    except Exception as error:  # zarr raises several types for foreign data
        raise StoreError(f"{path}: cannot open the store ({error}); create one with "
                         f"'nidecode ingest'") from None
    _check_format(root, path)
    return root


def _open_url_store(url: str) -> zarr.Group:
    # Every task opens the store: opened first, as Zarr v3 (no probe of the v2
    # metadata objects), and only a failure is diagnosed (bucket, credentials).
    try:
        root = zarr.open_group(url, mode="r", zarr_format=3,
                               storage_options=fs.storage_options())
    except Exception:  # zarr, fsspec and the file system raise many types
        fs.check_bucket(url)  # an unknown protocol, a missing bucket or credentials
        raise StoreError(f"{url}: not a nidecode store; create one with "
                         f"'nidecode ingest'") from None
    _check_format(root, url)
    return root


def list_subjects(path: str | Path) -> list[str]:
    """Ids of the complete subjects in a store, sorted."""
    root = open_store(path)
    if fs.is_url(path):
        return sorted(name[:-len(".json")] for name in fs.listdir(fs.join(path, _POINTERS))
                      if name.endswith(".json") and not name.startswith(".")
                      and _published_version(str(path), name[:-len(".json")]) is not None)
    with warnings.catch_warnings():
        # The directory of versions (and a link being swapped) is not a zarr node.
        warnings.filterwarnings("ignore", message="Object at .* is not recognized as a "
                                "component of a Zarr hierarchy")
        groups = list(root.groups())
    return sorted(name for name, group in groups if group.attrs.get("complete") is True)


def read_design(path: str | Path, subject: str, checksum: str | None = None) -> Design:
    """Labels, runs and sizes of one subject (no time series read).

    With ``checksum``, those of the version holding that checksum (see
    :func:`read_timeseries`); otherwise of the published version.
    """
    group = _subject_group(path, subject, checksum)
    categories = np.asarray(group.attrs["categories"], dtype=str)
    return Design(subject=subject,
                  labels=categories[group["labels"][:]],
                  runs=group["runs"][:].astype(np.int64),
                  n_voxels=group["X"].shape[1],
                  checksum=group.attrs["checksum"],
                  version=_version_name(path, group))


def read_designs(path: str | Path) -> dict[str, Design]:
    """The design of every complete subject, by id; an empty store is an error."""
    subjects = list_subjects(path)
    if not subjects:
        raise StoreError(f"{path}: the store holds no subject; run 'nidecode ingest' first")
    return {subject: read_design(path, subject) for subject in subjects}


def read_timeseries(path: str | Path, subject: str, voxels: slice | np.ndarray | None = None,
                    verify: str | None = None) -> np.ndarray:
    """Read a subject's time series, all scans, optionally a block of voxels.

    Parameters
    ----------
    path : str or Path
    subject : str
    voxels : slice or array of int, optional
        Columns to read; all by default.
    verify : str, optional
        Expected checksum: the version of the subject holding it is read,
        even if the subject was re-ingested since (until that version is
        swept), so all the reads of a run see one version; when the whole
        array is read, its data are checked against it.

    Returns
    -------
    numpy.ndarray, shape (n_scans, n_selected_voxels), float32
    """
    X = _subject_group(path, subject, verify)["X"]
    data = X[:] if voxels is None else X.oindex[:, voxels]
    if verify is not None and voxels is None and checksum(data) != verify:
        raise StoreError(f"{path}/{subject}: time series changed after ingest (checksum "
                         f"mismatch); ingest the subject again")
    return data


def read_geometry(path: str | Path, subject: str,
                  checksum: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The subject's mask (3D bool) and affine (4 x 4), of the version of ``checksum`` if given."""
    group = _subject_group(path, subject, checksum)
    return group["mask"][:].astype(bool), np.asarray(group.attrs["affine"], dtype=float)


def read_mean_volume(path: str | Path, subject: str,
                     checksum: str | None = None) -> np.ndarray | None:
    """The subject's mean EPI (3D), or ``None`` if it was not stored (trial betas)."""
    group = _subject_group(path, subject, checksum)
    return group["mean"][:] if "mean" in group else None


def read_attributes(path: str | Path, subject: str, checksum: str | None = None) -> dict:
    """All attributes of a subject group (cleaning settings, source files, ...)."""
    return dict(_subject_group(path, subject, checksum).attrs)


def _subject_group(path: str | Path, subject: str, checksum: str | None = None) -> zarr.Group:
    root = open_store(path)
    if fs.is_url(path):
        version = _published_version(str(path), subject)
        group = None if version is None else _complete_group(root, f"{_VERSIONS}/{version}")
    else:
        group = _complete_group(root, subject)
    if group is None:
        raise StoreError(f"{path}: no complete subject {subject!r}; ingest it first")
    if checksum is None or group.attrs.get("checksum") == checksum:
        return group
    for name in _version_names(path, subject):
        version = _complete_group(root, f"{_VERSIONS}/{name}")
        if version is not None and version.attrs.get("checksum") == checksum:
            return version
    raise StoreError(f"{path}/{subject}: ingested again since this run was planned, and the "
                     f"version it planned with is gone; run the command again to use the "
                     f"new data")


def _complete_group(root: zarr.Group, name: str) -> zarr.Group | None:
    try:
        group = root[name]
    except KeyError:
        return None
    if not isinstance(group, zarr.Group) or group.attrs.get("complete") is not True:
        return None
    return group


def _version_names(path: str | Path, subject: str) -> list[str]:
    """The versions of a subject kept in a store (replaced ones until swept)."""
    # A version is named {subject}-{32 hex digits}; subject ids may hold "-".
    return [name for name in fs.listdir(fs.join(fs.local(path), _VERSIONS))
            if name.startswith(f"{subject}-") and len(name) == len(subject) + 33]


def _version_name(path: str | Path, group: zarr.Group) -> str:
    """The version directory a subject group was read from ("" if unknown: a URL store)."""
    if group.path.startswith(f"{_VERSIONS}/"):
        return group.path.split("/", 1)[1]
    link = Path(fs.local(path)) / group.path
    return Path(os.readlink(link)).name if not fs.is_url(path) and link.is_symlink() else ""
