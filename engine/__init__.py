"""nidecode: a Dask-parallel engine for fMRI decoding (MVPA).

NIfTI runs + mask + labels -> a chunked Zarr store of cleaned time series ->
cross-validated linear SVMs for every subject x category pair, on a Dask
cluster -> scores tables and NIfTI weight maps.
"""

from engine.cluster import get_client
from engine.decode import decode
from engine.errors import InputError
from engine.ingest import ingest
from engine.store import list_subjects, open_store, read_design, read_timeseries

__all__ = ["InputError", "decode", "get_client", "ingest", "list_subjects", "open_store",
           "read_design", "read_timeseries"]
