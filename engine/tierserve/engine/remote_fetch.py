"""Remote model files, fetched once: the download, its checks and the skip.

Each remote source (:mod:`~tierserve.engine.source_s3`, ``source_gcs``, ``source_hf``)
says what its object is before anything is downloaded (:class:`RemoteFile`: the size,
a content checksum when the source gives one, an identity such as the ETag, and the
version to pin the download to) and downloads it to a path it is handed. :func:`fetch`
does the rest the same way for all of them:

* the download goes to a temporary file in the target's directory (the same
  filesystem), is checked (size, checksum) and renamed over the target, so a reader,
  say another replica on the shared cache claim, never sees a partial file, and a
  failed download leaves nothing behind;
* a target that is already there is kept, with no download, when its size is the
  object's and, when the source gives a checksum, its checksum is too. The checksum is
  computed once and recorded beside the file (``NAME.source``, with the identity), so a
  later start reads the record instead of the whole file; a record whose identity is
  not the object's (the object changed since) means a new download.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tierserve.engine.model_errors import ModelSourceError

ALGORITHMS = ("md5", "sha256", "git-sha1")  # git-sha1: a git blob id (non-LFS Hub files)


@dataclass(frozen=True)
class Digest:
    algorithm: str  # one of ALGORITHMS
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


@dataclass(frozen=True)
class RemoteFile:
    """What a source says about its object before it is fetched."""

    size: int | None
    digest: Digest | None  # None: the source gives no content checksum (size only)
    identity: str  # changes when the object does (ETag, generation, ...)
    version: str | None = None  # what the download pins (S3 VersionId, GCS generation,
    #                              the Hub's commit), so it gets the object described


class Remote(Protocol):
    uri: str

    def describe(self) -> RemoteFile: ...

    def download(self, meta: RemoteFile, tmp: Path) -> None: ...


def fetch(remote: Remote, target: Path) -> Path:
    """``remote``'s object at ``target``, downloaded unless it is already there."""
    meta = remote.describe()
    if is_current(target, meta):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(target) as tmp:
        remote.download(meta, tmp)
        got = verify(tmp, meta, remote.uri)
        os.replace(tmp, target)
    write_record(target, meta, got)
    return target


@contextlib.contextmanager
def temp_beside(target: Path) -> Iterator[Path]:
    """A fresh temporary path in ``target``'s directory, removed unless renamed away.
    Unique per call (not per pid: init containers of two pods on one claim often both
    run as pid 1)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def digest_of(path: Path, algorithm: str) -> str:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown checksum algorithm {algorithm!r} (known: {ALGORITHMS})")
    if algorithm == "git-sha1":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    else:
        digest = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, meta: RemoteFile, uri: str) -> Digest | None:
    """The downloaded file's checksum, after checking it (and the size) against ``meta``."""
    size = path.stat().st_size
    if meta.size is not None and size != meta.size:
        raise ModelSourceError(
            f"{uri}: the download has {size} bytes, the source said {meta.size} (an "
            "interrupted transfer, or the object changed meanwhile); try again")
    if meta.digest is None:
        return None
    got = Digest(meta.digest.algorithm, digest_of(path, meta.digest.algorithm))
    if got != meta.digest:
        raise ModelSourceError(f"{uri}: the download has {got}, the source says {meta.digest}")
    return got


def record_path(target: Path) -> Path:
    return target.with_name(target.name + ".source")


def write_record(target: Path, meta: RemoteFile, digest: Digest | None) -> None:
    record = {"identity": meta.identity, "size": target.stat().st_size,
              "digest": str(digest) if digest else None}
    with temp_beside(record_path(target)) as tmp:
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, record_path(target))


def _read_record(target: Path) -> dict[str, object] | None:
    try:
        record = json.loads(record_path(target).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_current(target: Path, meta: RemoteFile) -> bool:
    """Whether ``target`` already holds the object ``meta`` describes."""
    if not target.is_file():
        return False
    size = target.stat().st_size
    if meta.size is not None and size != meta.size:
        return False
    record = _read_record(target)
    if record is not None and record.get("size") == size:
        # the same object, or another (a re-upload) with the same content; else the
        # object changed since this file was fetched
        same_content = meta.digest is not None and record.get("digest") == str(meta.digest)
        return same_content or record.get("identity") == meta.identity
    if meta.digest is None:
        return meta.size is not None  # size is all the source gives to compare
    # a file someone else put there (a pre-filled claim): check it once, then record it
    if digest_of(target, meta.digest.algorithm) != meta.digest.hexdigest:
        return False
    write_record(target, meta, meta.digest)
    return True
