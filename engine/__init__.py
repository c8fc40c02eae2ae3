"""nidecode: a Dask-parallel engine for fMRI decoding (MVPA)."""
