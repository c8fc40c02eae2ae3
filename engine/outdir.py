"""The output directory of a run: its identity, partial results and final files.

Results are saved as they arrive, one small file per subject x pair under
``parts/``, each written to a temporary name and renamed, so an interrupted
run loses at most the tasks in flight. ``run.json`` records the parameters
that change the results (the run's identity) and ``"status"``: it says
``"complete"`` only once every final file is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import nibabel as nib
import numpy as np
import pandas as pd

from nidecode import store
from nidecode.errors import InputError

MANIFEST = "run.json"
BACKGROUND = "background.nii.gz"
PARTS = "parts"


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
        Created if missing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def start(self, identity: dict, *, overwrite: bool = False, **manifest) -> None:
        """Claim the directory for a run of this identity.

        A directory holding a run of other parameters is refused, unless
        ``overwrite``, in which case its results are removed first. A run of
        the same parameters keeps its saved parts: the new run resumes it.
        """
        previous = self.read_manifest()
        if previous is not None and previous.get("identity") != identity:
            if not overwrite:
                changed = sorted(key for key in set(identity) | set(previous.get("identity", {}))
                                 if identity.get(key) != previous.get("identity", {}).get(key))
                raise InputError(f"{self.path}: holds results of a run with other parameters "
                                 f"({', '.join(changed)}); choose another --out or pass "
                                 f"--overwrite")
            self.clear()
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / PARTS).mkdir(exist_ok=True)
        for leftover in self.path.rglob(".*"):  # temporary files of a killed write
            leftover.unlink()
        self.write_manifest({**manifest, "status": "running", "identity": identity})

    def clear(self) -> None:
        """Remove everything this directory holds."""
        if self.path.exists():
            shutil.rmtree(self.path)

    def read_manifest(self) -> dict | None:
        """The parsed ``run.json``, or ``None`` if there is none."""
        path = self.path / MANIFEST
        if not path.exists():
            if self.path.is_dir() and any(self.path.iterdir()):
                raise InputError(f"{self.path}: not empty and holds no {MANIFEST}; choose an "
                                 f"empty or new --out directory")
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            raise InputError(f"{path}: unreadable run manifest; remove {self.path} or pass "
                             f"--overwrite") from None

    def write_manifest(self, manifest: dict) -> None:
        """Write ``run.json`` atomically."""
        self._write_atomic(MANIFEST, lambda path: path.write_text(
            json.dumps(manifest, indent=2, default=_json_default, allow_nan=False) + "\n"))

    def save_part(self, part: Part) -> None:
        """Save one result as it arrives (atomic)."""
        arrays = {"key": np.array(part.key), **part.to_arrays()}
        self._write_atomic(f"{PARTS}/{_part_name(part.key)}",
                           lambda path: np.savez(path, **arrays))

    def load_parts(self, part_type: type[P]) -> dict[tuple[str, ...], P]:
        """Every saved result, by key."""
        parts = {}
        for path in sorted((self.path / PARTS).glob("[!.]*.npz")):
            with np.load(path) as arrays:
                key = tuple(str(name) for name in arrays["key"])
                parts[key] = part_type.from_arrays(key, arrays)
        return parts

    def write_table(self, name: str, table: pd.DataFrame) -> None:
        """Write a CSV table (atomic)."""
        self._write_atomic(name, lambda path: table.to_csv(path, index=False))

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Write a ``.npy`` array (atomic)."""
        self._write_atomic(name, lambda path: np.save(path, array))

    def write_image(self, name: str, image) -> None:
        """Write a NIfTI image (atomic); ``name`` may hold sub-directories."""
        self._write_atomic(name, image.to_filename)

    def write_background(self, store_path: str, subject: str) -> str | None:
        """Write the subject's mean EPI as ``background.nii.gz`` (for the report's maps).

        Returns the name to record as ``"background"`` in ``run.json``, or
        ``None`` when the store has no mean EPI (trial betas).
        """
        mean = store.read_mean_volume(store_path, subject)
        if mean is None:
            return None
        _, affine = store.read_geometry(store_path, subject)
        self.write_image(BACKGROUND, nib.Nifti1Image(mean, affine))
        return BACKGROUND

    def _write_atomic(self, name: str, write: Callable[[Path], object]) -> None:
        # The temporary file keeps the target's suffixes (numpy and nibabel
        # choose the format from them) and starts with a dot (never loaded).
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".",
                                             suffix="".join(target.suffixes))
        os.close(handle)
        try:
            write(Path(temporary))
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)


def _part_name(key: tuple[str, ...]) -> str:
    # Hash the key: subject ids and category names may hold any character.
    return hashlib.sha1("\0".join(key).encode()).hexdigest()[:20] + ".npz"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | Path):
        return value.tolist() if isinstance(value, np.ndarray) else str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
