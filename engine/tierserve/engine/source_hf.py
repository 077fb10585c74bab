"""``hf://ORG/REPO[@REVISION]/FILE``: one file of a Hugging Face model repo, through
huggingface_hub (``hf_hub_download``).

``REVISION`` is a branch, tag or commit (default ``main``); one with a ``/`` in it (such
as ``refs/pr/1``) goes in ``spec.model.revision`` (``tierserve storage-init
--revision``) instead. ``FILE`` may be in a folder of the repo (``sub/model.gguf``); it
is put into the destination under its own name. The token is ``HF_TOKEN``
(``secrets.hfToken`` in a cluster), read by the library; ``HF_ENDPOINT`` names another
Hub (a mirror, or the tests' local server), read on every call here.

The checksum is the Hub's ETag: the SHA-256 of an LFS (or Xet) file, which a GGUF
always is, or the git blob id of a small file. The download is pinned to the commit
the description came from.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tierserve.engine.model_errors import ModelSourceError, missing_client
from tierserve.engine.remote_fetch import Digest, RemoteFile

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_GIT_SHA1 = re.compile(r"^[0-9a-f]{40}$")
TOKEN_HINT = "set HF_TOKEN (secrets.hfToken) to a token of an account that may read it"


def split_hf_uri(uri: str, org: str, path: str, revision: str | None = None
                 ) -> tuple[str, str | None, str]:
    """``(repo_id, revision, filename)`` of ``hf://ORG/REPO[@REVISION]/FILE``; a
    ``revision`` given apart must agree with the URI's."""
    repo, _, filename = path.partition("/")
    name, at, in_uri = repo.partition("@")
    if not name or not filename or (at and not in_uri):
        raise ModelSourceError(
            f"{uri!r} must look like hf://ORG/REPO[@REVISION]/FILE, e.g. "
            "hf://bartowski/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct-Q4_K_M.gguf")
    if in_uri and revision and in_uri != revision:
        raise ModelSourceError(
            f"{uri!r} names revision {in_uri!r} but the revision given is {revision!r}")
    return f"{org}/{name}", in_uri or revision, filename


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


class HfFile:
    """One file of a repo at a revision, described with a HEAD of its resolve URL."""

    def __init__(self, uri: str, org: str, path: str, revision: str | None = None) -> None:
        self.uri = uri
        self.repo_id, self.revision, self.filename = split_hf_uri(uri, org, path, revision)
        try:
            import huggingface_hub  # noqa: F401  (fail here, naming the extra)
        except ImportError as exc:
            raise missing_client("hf", "huggingface-hub", exc) from None

    def describe(self) -> RemoteFile:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.repo_id, self.filename, revision=self.revision,
                         endpoint=_endpoint())
        with self._errors():
            meta = get_hf_file_metadata(url, endpoint=_endpoint())
        if not meta.etag:
            raise ModelSourceError(f"{self.uri}: the Hub at {url} gave no ETag for it")
        etag = meta.etag.lower()
        digest = (Digest("sha256", etag) if _SHA256.match(etag)
                  else Digest("git-sha1", etag) if _GIT_SHA1.match(etag) else None)
        return RemoteFile(size=meta.size, digest=digest, identity=etag,
                          version=meta.commit_hash)

    def download(self, meta: RemoteFile, tmp: Path) -> None:
        from huggingface_hub import hf_hub_download

        # the library writes <local_dir>/<FILE> and its metadata; an empty directory next
        # to the target keeps both out of the destination and the rename atomic
        with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=".hf-") as local, \
                self._errors():
            got = hf_hub_download(self.repo_id, self.filename,
                                  revision=meta.version or self.revision, local_dir=local,
                                  endpoint=_endpoint())
            os.replace(got, tmp)

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _errors(self)


@contextlib.contextmanager
def _errors(file: HfFile) -> Iterator[None]:
    """huggingface_hub's errors as :class:`ModelSourceError` naming the URI and cause."""
    import httpx2
    from huggingface_hub import errors as hfe

    uri, repo, revision = file.uri, file.repo_id, file.revision or "main"
    endpoint = _endpoint() or "https://huggingface.co"

    try:
        yield
    except hfe.LocalEntryNotFoundError as exc:  # what the library says when it is offline
        raise ModelSourceError(f"{uri}: cannot reach the Hub at {endpoint}: {exc}") from exc
    except hfe.GatedRepoError as exc:
        raise ModelSourceError(f"{uri}: access denied: {repo} is gated (accept its terms on "
                               f"the Hub); {TOKEN_HINT}") from exc
    except hfe.RepositoryNotFoundError as exc:
        raise ModelSourceError(f"{uri}: no repository {repo} at {endpoint} (or it is "
                               f"private: {TOKEN_HINT})") from exc
    except hfe.RevisionNotFoundError as exc:
        raise ModelSourceError(f"{uri}: {repo} has no revision {revision!r}") from exc
    except hfe.EntryNotFoundError as exc:
        raise ModelSourceError(
            f"{uri}: {repo} has no file {file.filename!r} at revision {revision!r}") from exc
    except hfe.HfHubHTTPError as exc:
        status = exc.response.status_code
        if status in (401, 403):
            raise ModelSourceError(f"{uri}: access denied ({status}); {TOKEN_HINT}") from exc
        raise ModelSourceError(f"{uri}: the Hub at {endpoint} answered {status}: {exc}"
                               ) from exc
    except (httpx2.TransportError, hfe.FileMetadataError) as exc:
        raise ModelSourceError(f"{uri}: cannot fetch from the Hub at {endpoint}: "
                               f"{type(exc).__name__}: {exc}") from exc
