"""nidecode: a Dask-parallel engine for fMRI decoding (MVPA).

NIfTI runs + mask + labels -> a chunked Zarr store of cleaned time series ->
cross-validated linear SVMs for every subject x category pair, on a Dask
cluster -> scores tables and NIfTI weight maps.

The public names below are imported on first use (PEP 562), so that
``import nidecode`` and ``nidecode --help`` load no cluster, store or
scikit-learn code.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nidecode")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

#: Public name -> the module that defines it.
_PUBLIC = {
    "ClusterError": "errors",
    "InputError": "errors",
    "NidecodeError": "errors",
    "NidecodeWarning": "errors",
    "OutputDirError": "errors",
    "ParameterError": "errors",
    "SearchLight": "decoding",
    "StoreError": "errors",
    "decode": "analyses.decode",
    "get_client": "cluster",
    "group": "analyses.group",
    "ingest": "ingest",
    "list_subjects": "store",
    "open_store": "store",
    "permute": "analyses.permute",
    "read_design": "store",
    "read_timeseries": "store",
    "searchlight": "analyses.searchlight",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"nidecode.{_PUBLIC[name]}"), name)
        globals()[name] = value  # looked up once
        return value
    raise AttributeError(f"module 'nidecode' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
