"""The classic decoding tutorial, by hand, on the real Haxby slice (the engine's seed).

Mask the BOLD series, keep two categories, fit a linear SVM, cross-validate
(first with plain KFold, then leaving one run out) and map the weights back
onto the brain. ``nidecode decode --categories face,cat`` does exactly this,
for every subject and pair, on a cluster; its accuracies equal these.

Run::

    python examples/seed_tutorial.py [HAXBY_SUBJECT_DIR]
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from nilearn.maskers import NiftiMasker
from sklearn.model_selection import KFold, LeaveOneGroupOut, cross_val_score
from sklearn.svm import SVC

from nidecode.datasets import load_haxby_slice

default = load_haxby_slice()
subject = Path(sys.argv[1]) if len(sys.argv) > 1 else default
labels = pd.read_csv(subject / "labels.txt", sep=" ")

masker = NiftiMasker(mask_img=subject / "mask.nii.gz", standardize="zscore_sample")
X = masker.fit_transform(subject / "bold.nii.gz")
keep = labels["labels"].isin(["face", "cat"]).to_numpy()
X, y, runs = X[keep], labels["labels"][keep].to_numpy(), labels["chunks"][keep].to_numpy()

svc = SVC(kernel="linear")
kfold = cross_val_score(svc, X, y, cv=KFold(5))
print(f"KFold(5), leaks across scans of one run: {kfold.round(4)} mean {kfold.mean():.4f}")
logo = cross_val_score(svc, X, y, cv=LeaveOneGroupOut(), groups=runs)
print(f"leave one run out:                       {logo.round(4)} mean {logo.mean():.4f}")

svc.fit(X, y)
weights = masker.inverse_transform(svc.coef_[0])  # positive favours svc.classes_[1]
weights.to_filename("face_vs_cat_weights.nii.gz")
print(f"weights of {svc.classes_[0]} (negative) vs {svc.classes_[1]} (positive) written to "
      f"face_vs_cat_weights.nii.gz; {np.count_nonzero(svc.coef_)} voxels")
