"""nidecode: a Dask-parallel engine for fMRI decoding (MVPA).

NIfTI runs + mask + labels -> a chunked Zarr store of cleaned time series ->
cross-validated linear SVMs for every subject x category pair, on a Dask
cluster -> scores tables and NIfTI weight maps.
"""

from importlib.metadata import PackageNotFoundError, version

from nidecode.cluster import get_client
from nidecode.decode import decode
from nidecode.decoding import SearchLight
from nidecode.errors import InputError
from nidecode.ingest import ingest
from nidecode.store import list_subjects, open_store, read_design, read_timeseries

try:
    __version__ = version("nidecode")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["InputError", "SearchLight", "decode", "get_client", "ingest", "list_subjects",
           "open_store", "read_design", "read_timeseries"]
