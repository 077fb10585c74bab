"""``gs://BUCKET/OBJECT``: a model file in Google Cloud Storage, through google-cloud-storage.

Credentials are Application Default Credentials: Workload Identity on GKE (the pod's
Kubernetes service account bound to a Google one), ``GOOGLE_APPLICATION_CREDENTIALS``
naming a key file, or gcloud's. Without any, the object is read anonymously, which
works for public buckets (a key file that is named but unusable is an error instead).
``STORAGE_EMULATOR_HOST`` points the client at an emulator (the tests' local server),
with anonymous credentials, as the library does.

The checksum is the object's MD5 (``md5Hash``); composite objects have none and are
compared by size and generation. The download is pinned to the generation described,
and the library checks the MD5 (or CRC32C) of what it downloads too.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tierserve.engine.model_errors import ModelSourceError, missing_client
from tierserve.engine.remote_fetch import Digest, RemoteFile

CREDENTIALS_HINT = ("give the pod a Google service account (Workload Identity) or "
                    "GOOGLE_APPLICATION_CREDENTIALS, with storage.objects.get on it")


def _storage() -> Any:
    try:
        import google.cloud.storage as storage
    except ImportError as exc:
        raise missing_client("gs", "google-cloud-storage", exc) from None
    return storage


def _client(uri: str) -> Any:
    storage = _storage()
    import google.auth.exceptions

    try:
        return storage.Client()
    except google.auth.exceptions.DefaultCredentialsError as exc:
        if key := os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"):  # named, but unusable
            raise ModelSourceError(
                f"{uri}: GOOGLE_APPLICATION_CREDENTIALS={key} gives no credentials: {exc}"
            ) from exc
        return storage.Client.create_anonymous_client()  # a public bucket needs none


class GcsObject:
    """One object, described by its metadata and downloaded at that generation."""

    def __init__(self, uri: str, bucket: str, name: str) -> None:
        if not name:
            raise ModelSourceError(f"{uri!r} names no object: gs://BUCKET/OBJECT")
        self.uri, self.bucket_name, self.name = uri, bucket, name
        self._bucket = _client(uri).bucket(bucket)

    def describe(self) -> RemoteFile:
        with _errors(self.uri):
            blob = self._bucket.get_blob(self.name)
        if blob is None:
            raise ModelSourceError(
                f"{self.uri}: no such object (the object, or its bucket, is not there)")
        md5 = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
        generation = str(blob.generation)
        return RemoteFile(size=int(blob.size), digest=Digest("md5", md5) if md5 else None,
                          identity=f"{generation}:{md5 or blob.crc32c}", version=generation)

    def download(self, meta: RemoteFile, tmp: Path) -> None:
        generation = int(meta.version) if meta.version else None
        blob = self._bucket.blob(self.name, generation=generation)
        with _errors(self.uri):
            blob.download_to_filename(str(tmp))


def _endpoint() -> str:
    return os.environ.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"


@contextlib.contextmanager
def _errors(uri: str) -> Iterator[None]:
    """google-cloud-storage's errors as :class:`ModelSourceError` naming the URI and cause."""
    import google.api_core.exceptions as gexc
    import google.auth.exceptions
    import google.cloud.storage.exceptions as sexc
    import requests

    try:
        yield
    except gexc.NotFound as exc:
        raise ModelSourceError(f"{uri}: no such object (the object, or its bucket, is not "
                               f"there): {exc.message}") from exc
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        raise ModelSourceError(
            f"{uri}: access denied ({exc.code} {exc.message}); {CREDENTIALS_HINT}") from exc
    except gexc.GoogleAPICallError as exc:
        raise ModelSourceError(f"{uri}: Cloud Storage answered {exc.code}: {exc.message}"
                               ) from exc
    except (sexc.DataCorruption, sexc.InvalidResponse) as exc:
        raise ModelSourceError(f"{uri}: the download was damaged: {exc}") from exc
    except (gexc.RetryError, google.auth.exceptions.GoogleAuthError,
            requests.exceptions.RequestException) as exc:
        raise ModelSourceError(f"{uri}: cannot fetch from {_endpoint()}: {exc}") from exc
