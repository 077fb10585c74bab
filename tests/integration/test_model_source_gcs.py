"""``gs://`` model URIs against a Cloud Storage emulator on 127.0.0.1 (the
``gcp-storage-emulator`` package, see ``storage_servers``), with real google-cloud-storage
through ``STORAGE_EMULATOR_HOST``.

The resolver fetches an object (checked against its md5Hash), keeps it on the next fetch
without a download, fetches a new generation again, and says clearly what is wrong for a
missing object and a missing bucket; ``tierserve storage-init``, as a process, does the
same.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.storage_servers import gcs_emulator, storage_init, unchanged
from tierserve.engine.model_source import ModelSourceError, resolve
from tierserve.engine.remote_fetch import record_path

storage = pytest.importorskip("google.cloud.storage")
MODEL = b"GGUF" + bytes(range(256)) * 64
URI = "gs://models/team/m.gguf"


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A bucket 'models' holding team/m.gguf on a fresh emulator."""
    with gcs_emulator() as host:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", host)
        models = storage.Client().create_bucket("models")
        models.blob("team/m.gguf").upload_from_string(MODEL)
        yield models


def test_fetched_once_then_kept(bucket: Any, tmp_path: Path) -> None:
    blob = bucket.get_blob("team/m.gguf")
    assert base64.b64decode(blob.md5_hash) == hashlib.md5(MODEL).digest()  # the emulator's
    got = resolve(URI, tmp_path / "dest")
    assert got == tmp_path / "dest" / "m.gguf" and got.read_bytes() == MODEL
    assert f"md5:{hashlib.md5(MODEL).hexdigest()}" in record_path(got).read_text()
    before = got.stat()
    assert resolve(URI, tmp_path / "dest") == got
    assert unchanged(got, before)  # not downloaded again
    assert sorted(p.name for p in got.parent.iterdir()) == ["m.gguf", "m.gguf.source"]


def test_a_new_generation_is_fetched_again(bucket: Any, tmp_path: Path) -> None:
    resolve(URI, tmp_path)
    new = MODEL[::-1]  # same size, other content
    bucket.blob("team/m.gguf").upload_from_string(new)
    assert resolve(URI, tmp_path).read_bytes() == new


def test_missing_objects_are_clear_errors(bucket: Any, tmp_path: Path) -> None:
    for uri in ("gs://models/team/other.gguf", "gs://no-such-bucket/m.gguf"):
        with pytest.raises(ModelSourceError, match=rf"^{uri}: no such object"):
            resolve(uri, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_storage_init_fetches_into_a_directory(bucket: Any, tmp_path: Path) -> None:
    dest = tmp_path / "mnt" / "models"
    done = storage_init("--uri", URI, "--dest", str(dest), env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest / "m.gguf")
    assert (dest / "m.gguf").read_bytes() == MODEL
    before = (dest / "m.gguf").stat()
    again = storage_init("--uri", URI, "--dest", str(dest), env=dict(os.environ))
    assert again.returncode == 0 and unchanged(dest / "m.gguf", before)  # a filled cache
    missing = storage_init("--uri", "gs://models/nope.gguf", "--dest", str(dest),
                           env=dict(os.environ))
    assert missing.returncode == 1
    assert "gs://models/nope.gguf: no such object" in missing.stderr


def test_a_named_key_file_that_gives_no_credentials(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """Not read anonymously instead: the error names the variable and the file."""
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    # should anything ask the metadata server or Google (a regression: an anonymous read),
    # it asks 127.0.0.1, where nothing listens
    for name in ("GCE_METADATA_HOST", "GCE_METADATA_IP"):
        monkeypatch.setenv(name, "127.0.0.1:9")
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    key = tmp_path / "key.json"
    key.write_text("{}")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    with pytest.raises(ModelSourceError,
                       match=rf"^{URI}: GOOGLE_APPLICATION_CREDENTIALS={key} gives no credentials"):
        resolve(URI, tmp_path / "dest")
