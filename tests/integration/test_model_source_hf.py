"""``hf://`` model URIs with real huggingface_hub pointed (``HF_ENDPOINT``) at the Hub's
resolve endpoint served on 127.0.0.1 (``storage_servers.HubServer``).

The resolver fetches an LFS file (a redirect, checked against its SHA-256) and a small
one in a folder (checked against its git blob id), keeps each on the next fetch without
a download, pins a revision from the URI or given apart, reads a gated repo only with
``HF_TOKEN``, and says clearly what is wrong for a missing repo, revision and file and
for an unreachable Hub; ``tierserve storage-init``, as a process, does the same.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.storage_servers import (
    COMMIT,
    TOKEN,
    HubServer,
    git_blob_id,
    storage_init,
    unchanged,
)
from tierserve.dev.cluster.procs import free_port
from tierserve.engine.model_source import ModelSourceError, resolve
from tierserve.engine.remote_fetch import record_path

pytest.importorskip("huggingface_hub")
MODEL = b"GGUF" + bytes(range(256)) * 64
CONFIG = b'{"architectures": ["LlamaForCausalLM"]}'
URI = "hf://org/repo-GGUF/m.gguf"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    server = HubServer({"org/repo-GGUF": {"m.gguf": MODEL, "sub/config.json": CONFIG},
                        "org/gated": {"g.gguf": MODEL[:100]}}, gated={"org/gated"})
    with server.serve() as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


def test_fetched_once_then_kept(hub: HubServer, tmp_path: Path) -> None:
    got = resolve(URI, tmp_path / "dest")
    assert got == tmp_path / "dest" / "m.gguf" and got.read_bytes() == MODEL
    assert f"sha256:{hashlib.sha256(MODEL).hexdigest()}" in record_path(got).read_text()
    before = got.stat()
    assert resolve(URI, tmp_path / "dest") == got
    assert unchanged(got, before) and hub.downloads["m.gguf"] == 1  # not downloaded again
    assert sorted(p.name for p in got.parent.iterdir()) == ["m.gguf", "m.gguf.source"]


def test_a_small_file_in_a_folder_at_a_revision(hub: HubServer, tmp_path: Path) -> None:
    got = resolve(f"hf://org/repo-GGUF@{COMMIT}/sub/config.json", tmp_path)
    assert got == tmp_path / "config.json" and got.read_bytes() == CONFIG
    assert f"git-sha1:{git_blob_id(CONFIG)}" in record_path(got).read_text()
    resolve("hf://org/repo-GGUF/sub/config.json", tmp_path, revision=COMMIT)
    assert hub.downloads["sub/config.json"] == 1


def test_a_gated_repo_needs_the_token(hub: HubServer, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelSourceError, match=r"access denied: org/gated is gated.*HF_TOKEN"):
        resolve("hf://org/gated/g.gguf", tmp_path)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert resolve("hf://org/gated/g.gguf", tmp_path).read_bytes() == MODEL[:100]


@pytest.mark.parametrize(("uri", "message"), [
    ("hf://org/nope/m.gguf", "no repository org/nope"),
    ("hf://org/repo-GGUF@v9/m.gguf", "org/repo-GGUF has no revision 'v9'"),
    ("hf://org/repo-GGUF/other.gguf", "org/repo-GGUF has no file 'other.gguf' at revision "
                                      "'main'"),
])
def test_missing_things_are_clear_errors(hub: HubServer, tmp_path: Path, uri: str,
                                         message: str) -> None:
    with pytest.raises(ModelSourceError, match=f"^{uri}: {message}"):
        resolve(uri, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_an_unreachable_hub_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(ModelSourceError, match=f"^{URI}: cannot fetch from the Hub at "
                       f"{endpoint}: ConnectError"):
        resolve(URI, tmp_path)


def test_storage_init_fetches_into_a_directory(hub: HubServer, tmp_path: Path) -> None:
    dest = tmp_path / "mnt" / "models"
    args = ("--uri", "hf://org/repo-GGUF/m.gguf", "--dest", str(dest), "--revision", COMMIT)
    done = storage_init(*args, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest / "m.gguf")
    assert (dest / "m.gguf").read_bytes() == MODEL
    again = storage_init(*args, env=dict(os.environ))
    assert again.returncode == 0 and hub.downloads["m.gguf"] == 1  # a filled cache
    missing = storage_init("--uri", "hf://org/repo-GGUF/nope.gguf", "--dest", str(dest),
                           env=dict(os.environ))
    assert missing.returncode == 1
    assert "hf://org/repo-GGUF/nope.gguf: org/repo-GGUF has no file" in missing.stderr
