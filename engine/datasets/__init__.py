"""Data shipped with nidecode: the real Haxby (2001) slice.

One axial slice of subject 1 of Haxby et al. (2001), all 1452 scans, 12 runs,
8 categories, in the Haxby layout (``bold.nii.gz``, ``labels.txt``,
``mask.nii.gz``). Released by its authors under CC BY-SA 3.0; the licence and
attribution are in ``haxby2001_slice/README.md`` and ``haxby2001_slice/LICENSE``.
It ships in the package so that the tests, examples and ``nidecode bench --data
real`` never download anything.
"""

from importlib.resources import files
from pathlib import Path

__all__ = ["load_haxby_slice"]


def load_haxby_slice() -> Path:
    """Return the directory of the packaged Haxby 2001 slice.

    Returns
    -------
    pathlib.Path
        A subject directory in the Haxby layout: ``bold.nii.gz`` (40 x 20 x 1
        voxels x 1452 scans), ``labels.txt`` (``labels chunks``, runs 0-11)
        and ``mask.nii.gz`` (530 voxels). Its ``README.md`` holds the reference
        accuracies of scikit-learn and nilearn on it.

    Examples
    --------
    >>> from nidecode.datasets import load_haxby_slice
    >>> sorted(p.name for p in load_haxby_slice().glob("*.nii.gz"))
    ['bold.nii.gz', 'mask.nii.gz']
    """
    return Path(str(files(__name__) / "haxby2001_slice"))
