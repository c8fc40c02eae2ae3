"""The prepare step every analysis shares, on the client, before any cluster starts.

Reading the designs and planning the subject x pair jobs (:func:`plan_study`),
the sphere geometry of searchlight analyses (:func:`subject_geometry`), and
the run's identity and output directory (:func:`claim_output`). What each
analysis adds (sphere batches, permutation chunks) stays in its own module.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from nidecode import store
from nidecode.analyses.plan import PairJob, plan_decode, plan_notes
from nidecode.errors import InputError, NidecodeWarning
from nidecode.io.haxby import load_mask_like
from nidecode.outdir import OutputDir
from nidecode.run import normalise_store_path, versions
from nidecode.spheres import sphere_neighbourhoods


@dataclass(frozen=True)
class Study:
    """The designs of a store's subjects and the jobs planned from them."""

    store_path: str
    designs: dict[str, store.Design]
    jobs: list[PairJob]
    notes: list[str]  # what the plan leaves out, printed before the cluster starts


@dataclass(frozen=True)
class Geometry:
    """A subject's grid and its searchlight spheres."""

    mask: np.ndarray
    affine: np.ndarray
    centres: np.ndarray  # indices among the mask voxels
    spheres: sp.csr_matrix


def plan_study(store_path: str | Path, cv: str, categories: Sequence[str] | None, *,
               group: bool = True) -> Study:
    """Read every subject's design and plan its pairs (see :func:`plan.plan_decode`).

    ``group``: whether the analysis makes group tests (notes then name the
    pairs that only one subject has).
    """
    store_path = normalise_store_path(store_path)
    designs = store.read_designs(store_path)
    jobs = plan_decode(list(designs.values()), cv, categories)
    notes = plan_notes(list(designs.values()), jobs, categories, group=group)
    return Study(store_path, designs, jobs, notes)


def claim_output(out: str | Path, study: Study, command: str, *, overwrite: bool,
                 categories: Sequence[str] | None, **parameters) -> tuple[dict, OutputDir]:
    """The run's identity (what changes its results) and its claimed output directory.

    A directory holding a run of another identity is refused unless
    ``overwrite`` (see :meth:`nidecode.outdir.OutputDir.start`); one of the
    same identity is resumed.
    """
    identity = {"command": command, "store": study.store_path,
                "subjects": {subject: design.checksum
                             for subject, design in study.designs.items()},
                "categories": sorted(categories) if categories else "all", **parameters}
    output = OutputDir(out)
    output.start(identity, overwrite=overwrite, versions=versions())
    return identity, output


def subject_geometry(store_path: str, subject: str, radius: float,
                     process_mask: str | Path | None,
                     checksum: str | None = None) -> Geometry:
    """The subject's mask, affine and spheres of ``radius`` mm around the centres.

    Centres are the mask's voxels, or those of ``process_mask`` inside it.
    """
    mask, affine = store.read_geometry(store_path, subject, checksum=checksum)
    centres_mask = None
    if process_mask is not None:
        centres_mask = load_mask_like(process_mask, mask.shape, affine,
                                      f"{{what}} of subject {subject}'s grid") & mask
        if not centres_mask.any():
            raise InputError(f"{process_mask}: no voxel of the process mask lies in the mask "
                             f"of subject {subject}; give a process mask inside the brain")
    centres, spheres = sphere_neighbourhoods(mask, affine, radius, centres_mask)
    return Geometry(mask, affine, centres, spheres)


def warn_if_unstandardized(study: Study, C: float) -> None:
    """Warn (:class:`~nidecode.errors.NidecodeWarning`) if a subject was stored unstandardized.

    Raw BOLD values around 1000 make ``C = 1`` a near hard-margin problem:
    the sphere solvers then run about 60 times slower (15.7 instead of about
    1000 spheres/s).
    """
    raw = [subject for subject, design in study.designs.items()
           if store.read_attributes(study.store_path, subject, checksum=design.checksum)
           .get("cleaning", {}).get("standardize") == "none"]
    if raw:
        warnings.warn(f"{study.store_path}: {len(raw)} subject(s) "
                      f"({', '.join(map(repr, raw[:3]))}{', ...' if len(raw) > 3 else ''}) "
                      f"were ingested with --standardize none: on raw BOLD values C={C:g} is a "
                      f"near hard-margin SVM and the searchlight runs about 60x slower; ingest "
                      f"with --standardize run (or global), or lower C", NidecodeWarning,
                      stacklevel=3)
