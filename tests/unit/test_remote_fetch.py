"""``remote_fetch.fetch``'s own decisions, with an in-memory source: a download that is
not what the source described leaves nothing; a source without a checksum is compared by
size and identity. (The real sources against real servers:
tests/integration/test_model_source_{s3,gcs,hf}.py.)"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tierserve.engine.model_errors import ModelSourceError
from tierserve.engine.remote_fetch import Digest, RemoteFile, digest_of, fetch, record_path


@dataclass
class Memory:
    """A source serving ``data`` and describing it as ``meta``."""

    data: bytes
    meta: RemoteFile
    uri: str = "mem://x/m.gguf"
    downloads: int = 0

    def describe(self) -> RemoteFile:
        return self.meta

    def download(self, meta: RemoteFile, tmp: Path) -> None:
        self.downloads += 1
        tmp.write_bytes(self.data)


def _md5(data: bytes) -> Digest:
    return Digest("md5", hashlib.md5(data).hexdigest())


def test_a_download_with_another_checksum_leaves_nothing(tmp_path: Path) -> None:
    source = Memory(b"abc", RemoteFile(3, _md5(b"abd"), "e1"))
    got, said = _md5(b"abc"), _md5(b"abd")
    with pytest.raises(ModelSourceError, match=rf"^mem://x/m.gguf: the download has {got}, "
                       rf"the source says {said}$"):
        fetch(source, tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []


def test_a_short_download_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="the download has 2 bytes, the source said 3"):
        fetch(Memory(b"ab", RemoteFile(3, None, "e1")), tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []


def test_without_a_checksum_size_and_identity_decide(tmp_path: Path) -> None:
    source = Memory(b"abc", RemoteFile(3, None, "e1"))
    target = fetch(source, tmp_path / "m.gguf")
    fetch(source, target)
    assert source.downloads == 1
    source.data, source.meta = b"xyz", RemoteFile(3, None, "e2")  # changed, same size
    assert fetch(source, target).read_bytes() == b"xyz" and source.downloads == 2


def test_a_re_upload_of_the_same_content_is_kept(tmp_path: Path) -> None:
    source = Memory(b"abc", RemoteFile(3, _md5(b"abc"), "generation-1"))
    fetch(source, tmp_path / "m.gguf")
    source.meta = RemoteFile(3, _md5(b"abc"), "generation-2")
    fetch(source, tmp_path / "m.gguf")
    assert source.downloads == 1


def test_git_blob_ids_are_computed_as_git_does(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"hello\n")
    # `printf 'hello\n' | git hash-object --stdin`
    assert digest_of(tmp_path / "f", "git-sha1") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert not record_path(tmp_path / "f").exists()
