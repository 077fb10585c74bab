"""``s3://BUCKET/KEY``: a model file in S3 or an S3-compatible store, through boto3.

boto3 finds everything the usual way: the endpoint from ``AWS_ENDPOINT_URL`` (or
``AWS_ENDPOINT_URL_S3``; MinIO, Ceph, a local test server), credentials from
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (``secrets.env`` in a cluster), the
pod's IAM role (IRSA: ``AWS_ROLE_ARN`` and ``AWS_WEB_IDENTITY_TOKEN_FILE``) or a
profile, the region from ``AWS_REGION``/``AWS_DEFAULT_REGION``.

The checksum is the ETag where it is the object's MD5: a single-part upload without
SSE-KMS or customer keys. A multipart ETag (``...-N``) is no content checksum, so such
objects are compared by size and ETag only. The download is pinned to the ETag (boto3's
ranged parts carry ``If-Match``) and, in a versioned bucket, to the version described.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tierserve.engine.model_errors import ModelSourceError, missing_client
from tierserve.engine.remote_fetch import Digest, RemoteFile

_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MISSING = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken"}
CREDENTIALS_HINT = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (secrets.env) or give "
                    "the pod an IAM role (IRSA)")


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise missing_client("s3", "boto3", exc) from None
    return boto3


class S3Object:
    """One object, described with HEAD and downloaded with boto3's transfer manager."""

    def __init__(self, uri: str, bucket: str, key: str) -> None:
        if not key:
            raise ModelSourceError(f"{uri!r} names no object: s3://BUCKET/KEY")
        self.uri, self.bucket, self.key = uri, bucket, key
        boto3 = _boto3()
        with _errors(uri, "configured by the environment"):  # e.g. a malformed endpoint URL
            self._client = boto3.client("s3")

    def describe(self) -> RemoteFile:
        with self._errors():
            head = self._client.head_object(Bucket=self.bucket, Key=self.key)
        etag = str(head["ETag"]).strip('"')
        encrypted = head.get("ServerSideEncryption", "").startswith("aws:kms") or (
            "SSECustomerAlgorithm" in head)
        digest = Digest("md5", etag) if _MD5.match(etag) and not encrypted else None
        version = head.get("VersionId")
        return RemoteFile(size=int(head["ContentLength"]), digest=digest,
                          identity=f"{etag}@{version}" if version else etag, version=version)

    def download(self, meta: RemoteFile, tmp: Path) -> None:
        extra = {"VersionId": meta.version} if meta.version else {}
        with self._errors():
            self._client.download_file(self.bucket, self.key, str(tmp), ExtraArgs=extra)

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _errors(self.uri, str(self._client.meta.endpoint_url))


@contextlib.contextmanager
def _errors(uri: str, endpoint: str) -> Iterator[None]:
    """boto3's errors as :class:`ModelSourceError` naming the URI and the cause."""
    import boto3.exceptions
    import botocore.exceptions as bce

    try:
        yield
    except bce.ClientError as exc:
        raise _client_error(uri, exc.response) from exc
    except (bce.NoCredentialsError, bce.PartialCredentialsError) as exc:
        raise ModelSourceError(
            f"{uri}: no usable AWS credentials ({exc}): {CREDENTIALS_HINT}") from exc
    except (bce.BotoCoreError, boto3.exceptions.Boto3Error) as exc:
        raise ModelSourceError(
            f"{uri}: cannot fetch from the S3 endpoint {endpoint}: {exc}") from exc


def _client_error(uri: str, response: dict[str, Any]) -> ModelSourceError:
    error = response.get("Error", {})
    code = str(error.get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _MISSING or status == 404:
        return ModelSourceError(f"{uri}: no such object (the key, or its bucket, is not there)")
    if code in _DENIED or status == 403:
        return ModelSourceError(f"{uri}: access denied ({code}); {CREDENTIALS_HINT}, with "
                                "s3:GetObject on it")
    return ModelSourceError(f"{uri}: S3 answered {status} {code}: {error.get('Message', '')}")
