"""Running work on a Dask cluster: submit, wait, hand results over as they arrive.

The commands (:mod:`nidecode.analyses.decode`, :mod:`nidecode.analyses.searchlight`, ...) plan
their tasks and save what :func:`run_tasks` hands them; ingest of many
subjects runs here too, one task per subject.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from distributed import Client, KilledWorker, as_completed
from tqdm.auto import tqdm

from nidecode import store
from nidecode.errors import ClusterError, first_line
from nidecode.ingest import (
    SubjectSource,
    estimate_run_betas,
    find_subjects,
    ingest_subject,
)

VERSIONED = ("nidecode", "scikit-learn", "nilearn", "nibabel", "numpy", "zarr", "dask",
             "distributed", "pandas")


def ingest_on_cluster(subject_dirs: Sequence[str | Path], store_path: str | Path,
                      mask: str | Path, client: Client, *, progress: bool = True,
                      **settings) -> list[dict]:
    """Ingest subjects in parallel, one Dask task per subject.

    Each worker reads its subject's BOLD block by block (memory bounded by
    the block size and the masked output, not the file) and writes its
    group into the store, which must be a path all workers can write.
    Parameters are those of :func:`nidecode.ingest.ingest`.

    Returns
    -------
    list of dict
        One report per subject, sorted by id: ``subject``, ``n_scans``,
        ``n_voxels``, ``n_constant_voxels`` (see :func:`nidecode.ingest.ingest_subject`).
    """
    return ingest_sources_on_cluster(find_subjects(subject_dirs, mask), store_path, client,
                                     progress=progress, **settings)


def ingest_sources_on_cluster(sources: Sequence[SubjectSource], store_path: str | Path,
                              client: Client, *, progress: bool = True,
                              **settings) -> list[dict]:
    """Ingest subject sources (:func:`nidecode.ingest.find_bids_subjects`, ...), one task each.

    With ``betas``, each run's GLM is a task of its own, and the subject's
    task gathers them. Parameters are those of :func:`nidecode.ingest.ingest_subject`;
    returns the subjects' reports, as :func:`ingest_on_cluster`.
    """
    store.create_store(store_path)
    path = normalise_store_path(store_path)
    futures = []
    for source in sources:
        tag = f"{source.subject}-{uuid.uuid4().hex[:8]}"
        run_betas = None
        if settings.get("betas"):
            run_betas = [client.submit(estimate_run_betas, source, run, settings["betas"],
                                       drop_scans=settings.get("drop_scans", 0),
                                       block_size=settings.get("block_size", 64),
                                       key=f"betas-{tag}-{run}")
                         for run in range(len(source.images))]
        futures.append(client.submit(ingest_subject, source, path, run_betas=run_betas,
                                     key=f"ingest-{tag}", **settings))
    reports: list[dict] = []
    run_tasks(client, futures, on_result=reports.append, count=lambda report: 1,
              total=len(sources), progress=progress, unit="subject")
    return sorted(reports, key=lambda report: report["subject"])


def run_tasks(client: Client, futures: list, *, on_result: Callable, count: Callable,
              total: int, initial: int = 0, progress: bool = True, unit: str = "fit") -> None:
    """Wait for futures as they finish, hand each result to ``on_result``.

    On any error or interrupt, the futures still pending are cancelled;
    results already handed over stay saved. A task whose workers kept dying
    (distributed's ``KilledWorker``) raises :class:`~nidecode.errors.ClusterError`.
    """
    bar = tqdm(total=total, initial=initial, unit=unit, disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    try:
        for future in as_completed(futures):
            result = future.result()
            on_result(result)
            bar.update(count(result))
            future.release()
    except KilledWorker as error:
        client.cancel(futures)
        raise ClusterError(f"the workers running a task died ({first_line(error)}); results "
                           f"saved so far are kept: check the workers' memory and logs, then "
                           f"run the same command again to resume") from None
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        bar.close()


def normalise_store_path(store_path: str | Path) -> str:
    """An absolute local path (workers may run elsewhere), or the URL unchanged."""
    text = str(store_path)
    return text if "://" in text else str(Path(text).resolve())


def task_key(kind: str, identity: dict, batch: Sequence) -> str:
    """A deterministic Dask key: the same work gets the same key, whatever the order."""
    digest = hashlib.sha1(repr((sorted(identity.items()), [job.key for job in batch]))
                          .encode()).hexdigest()[:16]
    return f"{kind}-{batch[0].key[0]}-{digest}"


def phase_timings(started: float, submitted: float, computed: float) -> dict[str, float]:
    """Seconds spent preparing, computing and writing a run (``time.perf_counter`` marks)."""
    now = time.perf_counter()
    return {"prepare_s": submitted - started, "compute_s": computed - submitted,
            "write_s": now - computed, "total_s": now - started}


def versions() -> dict[str, str]:
    """Versions of nidecode and the libraries whose behaviour the results depend on."""
    found = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
