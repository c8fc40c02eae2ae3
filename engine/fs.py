"""Paths that may be fsspec URLs: the one module that knows fsspec.

Every path the commands take (the store, ``--out``, subject directories,
BIDS roots, masks) may be a local path or a URL (``s3://bucket/key``,
``gs://``, ``az://``, ``memory://`` for tests). A ``file://`` URL is a local
path. Credentials and endpoints come from the usual places (environment
variables, the file system's configuration files) and from the storage
options set once per process by :func:`set_storage_options` (the
``--storage-options JSON`` of every command). They are also kept in the
environment variable :data:`OPTIONS_VARIABLE`, which the worker processes
of a LocalCluster inherit, and :func:`nidecode.cluster.get_client` sends
them to the workers of any cluster (a worker plugin).

Errors of the file systems (unknown protocol, missing bucket, missing
credentials, access denied) become one :class:`~nidecode.errors.InputError`
line naming the URL and the fix (:func:`storage_error`).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec

from nidecode.errors import InputError, first_line

OPTIONS_VARIABLE = "NIDECODE_STORAGE_OPTIONS"
#: The package that gives fsspec each protocol, named in the message when it is missing.
PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
            "abfs": "adlfs", "abfss": "adlfs"}
_options: dict | None = None


def is_url(path: str | Path) -> bool:
    """Whether ``path`` is a URL of a file system other than the local disk."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def local(path: str | Path) -> str:
    """A ``file://`` URL as a local path; any other path unchanged (as a string)."""
    text = str(path)
    return text[len("file://"):] if text.startswith("file://") else text


def join(base: str | Path, *parts: str) -> str | Path:
    """``base / part / ...``: a URL joined with ``/``, a local path as a Path."""
    if is_url(base):
        return posixpath.join(str(base).rstrip("/"), *parts)
    return Path(local(base)).joinpath(*parts)


def name(path: str | Path) -> str:
    """The last component of a path or URL (``s3://b/data/sub01/`` -> ``sub01``)."""
    return posixpath.basename(str(path).rstrip("/")) if is_url(path) else Path(local(path)).name


def parent(path: str | Path) -> str | Path:
    """The folder holding ``path``."""
    if is_url(path):
        return posixpath.dirname(str(path).rstrip("/"))
    return Path(local(path)).parent


def set_storage_options(options: dict | str | None) -> dict:
    """Set the storage options of every file system opened from now on, in this process.

    Parameters
    ----------
    options : dict or str (JSON) or None
        Keyword arguments of the file systems, e.g. ``{"anon": true}`` or
        ``{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}``;
        ``None`` or ``{}`` clears them.

    Returns
    -------
    dict
        The options set.
    """
    global _options
    if isinstance(options, str):
        try:
            options = json.loads(options)
        except json.JSONDecodeError as error:
            raise InputError(f"--storage-options {options}: not JSON ({error.msg}); give an "
                             f"object such as '{{\"anon\": true}}'") from None
        if not isinstance(options, dict):
            raise InputError(f"--storage-options {json.dumps(options)}: a JSON object is "
                             f"needed, e.g. '{{\"anon\": true}}'")
    _options = dict(options or {})
    if _options:
        os.environ[OPTIONS_VARIABLE] = json.dumps(_options)
    else:
        os.environ.pop(OPTIONS_VARIABLE, None)
    return _options


def storage_options() -> dict:
    """The storage options of this process (set here, or inherited through the environment)."""
    if _options is not None:
        return dict(_options)
    text = os.environ.get(OPTIONS_VARIABLE)
    return json.loads(text) if text else {}


def filesystem(url: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system of a URL and the path inside it, with this process's storage options."""
    text = str(url)
    protocol = text.split("://", 1)[0]
    try:
        return fsspec.core.url_to_fs(text, **storage_options())
    except ImportError:
        package = PACKAGES.get(protocol, f"the fsspec file system of {protocol}://")
        raise InputError(f"{text}: {protocol}:// needs {package}; install it with "
                         f"pip install 'nidecode[cloud]'") from None
    except ValueError as error:
        if "Protocol not known" not in str(error):
            raise InputError(f"{text}: cannot open ({first_line(error)}); check the URL and "
                             f"--storage-options") from None
        raise InputError(f"{text}: unknown protocol {protocol}://; give a local path or an "
                         f"s3://, gs://, az:// URL (pip install 'nidecode[cloud]')") from None


def storage_error(url: str | Path, error: BaseException) -> InputError:
    """One line naming the URL and the fix, for an error of a file system."""
    text = first_line(error)
    kind = type(error).__name__
    if isinstance(error, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return InputError(f"{url}: access denied ({text}); check the credentials "
                          f"(AWS_ACCESS_KEY_ID, ... or --storage-options) and the bucket's policy")
    if "NoCredentials" in kind or "credentials" in text.lower():
        return InputError(f"{url}: no credentials found; set them in the environment (e.g. "
                          f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or pass "
                          f"--storage-options '{{\"anon\": true}}' for a public bucket")
    if "NoSuchBucket" in text or "bucket" in text.lower():
        return InputError(f"{url}: no such bucket ({text}); create the bucket or fix the URL")
    if isinstance(error, FileNotFoundError):
        return InputError(f"{url}: not found; check the URL")
    return InputError(f"{url}: storage error ({kind}: {text}); check the URL, the "
                      f"credentials and --storage-options")


@contextlib.contextmanager
def translated(url: str | Path) -> Iterator[None]:
    """Turn the errors of a file system into :func:`storage_error`'s one line."""
    try:
        yield
    except InputError:
        raise
    except Exception as error:  # s3fs, botocore and aiohttp raise many types
        if not _is_storage_error(error):
            raise
        raise storage_error(url, error) from None


def _is_storage_error(error: BaseException) -> bool:
    module = type(error).__module__
    return isinstance(error, OSError) or module.split(".")[0] in (
        "botocore", "aiobotocore", "s3fs", "aiohttp", "gcsfs", "adlfs", "azure", "google")


def check_bucket(url: str | Path) -> None:
    """Refuse a URL of an unknown protocol, or whose bucket (container) does not exist."""
    if not is_url(url):
        return
    filesystem_, inner = filesystem(url)
    if str(url).split("://", 1)[0] not in PACKAGES:
        return
    bucket = inner.split("/", 1)[0]
    try:
        # info, not exists: exists answers False for missing credentials too.
        filesystem_.info(bucket)
    except FileNotFoundError:
        raise InputError(f"{url}: no such bucket {bucket!r} (or no access to it); create the "
                         f"bucket or fix the URL and the credentials") from None
    except Exception as error:  # s3fs, botocore and aiohttp raise many types
        if not _is_storage_error(error) and "Credentials" not in type(error).__name__:
            raise
        raise storage_error(url, error) from None


def exists(path: str | Path) -> bool:
    """Whether a file or folder (a prefix holding objects) exists."""
    return _ask(path, Path.exists, "exists")


def isfile(path: str | Path) -> bool:
    """Whether ``path`` is a file (an object)."""
    return _ask(path, Path.is_file, "isfile")


def isdir(path: str | Path) -> bool:
    """Whether ``path`` is a folder (on object stores: a prefix holding objects)."""
    return _ask(path, Path.is_dir, "isdir")


def _ask(path: str | Path, on_disk: Callable[[Path], bool], method: str) -> bool:
    """A yes/no question about ``path``: ``on_disk`` locally, the file system's ``method``
    on a URL (storage errors as one line)."""
    if not is_url(path):
        return on_disk(Path(local(path)))
    fs, inner = filesystem(path)
    with translated(path):
        return getattr(fs, method)(inner)


def listdir(path: str | Path) -> list[str]:
    """The names of the entries of a folder, sorted (none if it does not exist)."""
    if not is_url(path):
        folder = Path(local(path))
        return sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []
    fs, inner = filesystem(path)
    with translated(path):
        try:
            entries = fs.ls(inner, detail=False, refresh=True)
        except FileNotFoundError:
            return []
    return sorted(posixpath.basename(entry.rstrip("/")) for entry in entries
                  if entry.rstrip("/") != inner.rstrip("/"))


def find(path: str | Path) -> list[str]:
    """Every file below a folder, as paths relative to it (``a/b.nii.gz``), sorted."""
    if not is_url(path):
        root = Path(local(path))
        return sorted(entry.relative_to(root).as_posix() for entry in root.rglob("*")
                      if entry.is_file())
    fs, inner = filesystem(path)
    inner = inner.rstrip("/")
    with translated(path):
        try:
            found = fs.find(inner, withdirs=False)
        except FileNotFoundError:
            return []
    return sorted(entry[len(inner) + 1:] for entry in found if entry.startswith(inner + "/"))


def read_bytes(path: str | Path) -> bytes:
    """The content of a file."""
    if not is_url(path):
        return Path(local(path)).read_bytes()
    fs, inner = filesystem(path)
    with translated(path):
        return fs.cat_file(inner)


def read_bytes_if_any(path: str | Path) -> bytes | None:
    """The content of a file, or ``None`` if there is no such file (other errors raised)."""
    if not is_url(path):
        try:
            return Path(local(path)).read_bytes()
        except FileNotFoundError:
            return None
    filesystem_, inner = filesystem(path)
    try:
        return filesystem_.cat_file(inner)
    except FileNotFoundError:
        return None
    except Exception as error:  # s3fs, botocore and aiohttp raise many types
        if not _is_storage_error(error):
            raise
        raise storage_error(path, error) from None


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a whole object in one PUT (atomic on object stores); local: as is."""
    fs, inner = filesystem(path)
    with translated(path):
        fs.pipe_file(inner, data)


def remove(path: str | Path, recursive: bool = False) -> None:
    """Remove a file (or a folder and everything below it); missing is not an error."""
    fs, inner = filesystem(path)
    with translated(path), contextlib.suppress(FileNotFoundError):
        fs.rm(inner, recursive=recursive)


def age(path: str | Path) -> float:
    """Seconds since a file was last written."""
    fs, inner = filesystem(path)
    with translated(path):
        return time.time() - fs.modified(inner).timestamp()


@contextlib.contextmanager
def local_copy(path: str | Path) -> Iterator[Path]:
    """A local path to the file: itself, or a temporary copy of an object (removed after).

    nibabel reads a ``.nii.gz`` as one gzip stream: a whole-file download
    then a local read is one request and as fast as the network allows,
    where reading through a remote file object makes many small range
    requests (see ``docs/storage.md``).
    """
    if not is_url(path):
        yield Path(local(path))
        return
    fs, inner = filesystem(path)
    suffix = "".join(Path(posixpath.basename(inner)).suffixes)
    handle, temporary = tempfile.mkstemp(prefix="nidecode-", suffix=suffix)
    os.close(handle)
    try:
        with translated(path):
            fs.get_file(inner, temporary)
        yield Path(temporary)
    finally:
        os.remove(temporary)


def put_atomic(url: str, write: Callable[[Path], object]) -> str:
    """Write an object through ``write(local_temporary_path)`` then one upload to ``url``.

    An object store makes a whole object visible at once when its upload
    completes (single or multipart), so readers never see half a file:
    there is no temporary key to rename.
    """
    fs, inner = filesystem(url)
    suffix = "".join(Path(posixpath.basename(inner)).suffixes)
    with tempfile.TemporaryDirectory(prefix="nidecode-") as folder:
        temporary = Path(folder) / f"part{suffix}"
        write(temporary)
        with translated(url):
            fs.put_file(str(temporary), inner)
    return url


def open_file(url: str | Path):
    """A file object reading an object with range requests (for headers: a few kilobytes)."""
    filesystem_, inner = filesystem(url)
    with translated(url):
        return filesystem_.open(inner, "rb")


@contextlib.contextmanager
def metadata_mirror(url: str | Path, kept: tuple[str, ...] = (".json", ".tsv")) -> Iterator[Path]:
    """A temporary local tree of a folder at a URL: its text files copied, the rest empty.

    One listing of every object below ``url`` (no walk), then the files
    ending with ``kept`` (BIDS sidecars, events, confounds, participants)
    fetched concurrently; every other file (the images) is an empty
    placeholder of the same name, so a reader of the layout works on the
    tree and maps image paths back to URLs (:func:`relative_url`).
    Removed on exit. A local path is yielded as it is.
    """
    if not is_url(url):
        yield Path(local(url))
        return
    found = _objects_below(url)
    contents = _fetch(url, [path for path in found if path.endswith(kept)])
    with tempfile.TemporaryDirectory(prefix="nidecode-mirror-") as folder:
        _write_tree(Path(folder), {path: contents.get(path, b"") for path in found})
        yield Path(folder)


def relative_url(path: str | Path, mirror: Path, url: str) -> str | Path:
    """The URL of a file of a :func:`metadata_mirror` (``path`` unchanged outside it)."""
    try:
        relative = Path(path).relative_to(mirror)
    except ValueError:
        return path
    return join(url, *relative.parts)


@contextlib.contextmanager
def local_folder(url: str | Path, skipped: tuple[str, ...] = ()) -> Iterator[Path]:
    """A temporary local copy of a folder at a URL (files under ``skipped`` prefixes left out).

    The copy is named as the folder (``s3://b/run1`` -> ``.../run1``) and
    removed on exit. A local path is yielded as it is.
    """
    if not is_url(url):
        yield Path(local(url))
        return
    found = [path for path in _objects_below(url) if not path.startswith(skipped)]
    contents = _fetch(url, found)
    with tempfile.TemporaryDirectory(prefix="nidecode-") as folder:
        root = Path(folder, name(url))
        root.mkdir()
        _write_tree(root, contents)
        yield root


def _objects_below(url: str | Path) -> list[str]:
    """Every object below the folder ``url``, by its path relative to it (one listing)."""
    filesystem_, inner = filesystem(url)
    inner = inner.rstrip("/")
    with translated(url):
        return [path[len(inner) + 1:] for path in filesystem_.find(inner)
                if path.startswith(inner + "/")]


def _fetch(url: str | Path, relative: list[str]) -> dict[str, bytes]:
    """The contents of objects below ``url`` (relative paths), fetched concurrently."""
    if not relative:
        return {}
    filesystem_, inner = filesystem(url)
    inner = inner.rstrip("/")
    with translated(url):
        contents = filesystem_.cat([f"{inner}/{path}" for path in relative])
    return {path[len(inner) + 1:]: content for path, content in contents.items()}


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative '/'-separated path -> bytes) below ``root``."""
    for path, content in files.items():
        target = Path(root, *path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
