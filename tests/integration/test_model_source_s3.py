"""``s3://`` model URIs against moto's S3 server on 127.0.0.1, with real boto3.

The resolver fetches an object into the destination (checked against its MD5 ETag),
keeps it on the next fetch without a download, fetches a changed object again, checks a
file it did not write, handles a multipart object (no MD5), and says clearly what is
wrong for a missing object, a missing bucket and an unreachable endpoint; ``tierserve
storage-init``, as a process, does the same.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.storage_servers import s3_server, storage_init, unchanged
from tierserve.dev.cluster.procs import free_port
from tierserve.engine.model_source import ModelSourceError, resolve
from tierserve.engine.remote_fetch import record_path

boto3 = pytest.importorskip("boto3")
MODEL = b"GGUF" + bytes(range(256)) * 64
URI = "s3://models/team/m.gguf"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A bucket 'models' holding team/m.gguf; boto3 configured only by the environment."""
    with s3_server() as endpoint:
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1",
                            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-creds")}.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3")
        client.create_bucket(Bucket="models")
        client.put_object(Bucket="models", Key="team/m.gguf", Body=MODEL)
        yield client


def test_fetched_once_then_kept(s3: Any, tmp_path: Path) -> None:
    got = resolve(URI, tmp_path / "dest")
    assert got == tmp_path / "dest" / "m.gguf" and got.read_bytes() == MODEL
    assert f"md5:{hashlib.md5(MODEL).hexdigest()}" in record_path(got).read_text()
    before = got.stat()
    assert resolve(URI, tmp_path / "dest") == got
    assert unchanged(got, before)  # not downloaded again
    assert sorted(p.name for p in got.parent.iterdir()) == ["m.gguf", "m.gguf.source"]


def test_a_changed_object_is_fetched_again(s3: Any, tmp_path: Path) -> None:
    resolve(URI, tmp_path)
    new = MODEL[::-1]  # same size, other content
    s3.put_object(Bucket="models", Key="team/m.gguf", Body=new)
    assert resolve(URI, tmp_path).read_bytes() == new


def test_a_file_it_did_not_write_is_checked(s3: Any, tmp_path: Path) -> None:
    target = tmp_path / "m.gguf"
    target.write_bytes(MODEL)  # a claim filled by hand: kept, and recorded
    before = target.stat()
    resolve(URI, tmp_path)
    assert unchanged(target, before) and record_path(target).is_file()
    record_path(target).unlink()
    target.write_bytes(b"x" * len(MODEL))  # same size, wrong content: replaced
    assert resolve(URI, tmp_path).read_bytes() == MODEL


def test_a_multipart_object_is_compared_by_size_and_etag(s3: Any, tmp_path: Path) -> None:
    part = os.urandom(5 * 2**20)  # S3's smallest part but the last
    upload = s3.create_multipart_upload(Bucket="models", Key="big.gguf")
    etags = [s3.upload_part(Bucket="models", Key="big.gguf", UploadId=upload["UploadId"],
                            PartNumber=n, Body=body)["ETag"]
             for n, body in ((1, part), (2, b"tail"))]
    s3.complete_multipart_upload(
        Bucket="models", Key="big.gguf", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n}
                                   for n, e in enumerate(etags, 1)]})
    got = resolve("s3://models/big.gguf", tmp_path)
    assert got.read_bytes() == part + b"tail"
    assert '"digest": null' in record_path(got).read_text()  # a multipart ETag is no MD5
    before = got.stat()
    resolve("s3://models/big.gguf", tmp_path)
    assert unchanged(got, before)


def test_missing_objects_are_clear_errors(s3: Any, tmp_path: Path) -> None:
    for uri in ("s3://models/team/other.gguf", "s3://no-such-bucket/m.gguf"):
        with pytest.raises(ModelSourceError, match=rf"^{uri}: no such object"):
            resolve(uri, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_an_unreachable_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ModelSourceError, match=f"cannot fetch from the S3 endpoint {endpoint}"):
        resolve(URI, tmp_path)


def test_storage_init_fetches_into_a_directory(s3: Any, tmp_path: Path) -> None:
    dest = tmp_path / "mnt" / "models"
    done = storage_init("--uri", URI, "--dest", str(dest), env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest / "m.gguf")
    assert (dest / "m.gguf").read_bytes() == MODEL
    before = (dest / "m.gguf").stat()
    again = storage_init("--uri", URI, "--dest", str(dest), env=dict(os.environ))
    assert again.returncode == 0 and unchanged(dest / "m.gguf", before)  # a filled cache
    missing = storage_init("--uri", "s3://models/nope.gguf", "--dest", str(dest),
                           env=dict(os.environ))
    assert missing.returncode == 1
    assert "s3://models/nope.gguf: no such object" in missing.stderr


def test_the_local_cache_keeps_one_directory_per_uri(s3: Any, tmp_path: Path) -> None:
    """In-process (--target local) two URIs ending in the same name never collide."""
    s3.create_bucket(Bucket="other")
    s3.put_object(Bucket="other", Key="m.gguf", Body=b"other model")
    first = resolve(URI, tmp_path, in_place=True)
    second = resolve("s3://other/m.gguf", tmp_path, in_place=True)
    assert first.name == second.name == "m.gguf" and first.parent != second.parent
    assert first.parent.parent == second.parent.parent == tmp_path
    assert (first.read_bytes(), second.read_bytes()) == (MODEL, b"other model")
