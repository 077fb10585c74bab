"""Real protocol servers on 127.0.0.1 for the remote model sources' tests.

* :func:`s3_server`: moto's S3 in server mode (``ThreadedMotoServer``), spoken to by
  real boto3 through ``AWS_ENDPOINT_URL``;
* :func:`gcs_emulator`: the ``gcp-storage-emulator`` package's server, a separate
  process, spoken to by real google-cloud-storage through ``STORAGE_EMULATOR_HOST``;
  chosen over Go's fake-gcs-server because it installs from PyPI with the dev extra (no
  Go build in the test setup) and serves the JSON API's metadata (``md5Hash``,
  ``generation``) and media downloads the client uses;
* :class:`HubServer`: the Hugging Face Hub's resolve endpoint
  (``/{repo}/resolve/{revision}/{file}``) as the Hub serves it, for real
  huggingface_hub through ``HF_ENDPOINT``: a small file answers 200 with its git blob id
  as ``ETag``; an LFS file answers 302 to a content URL with ``X-Linked-Etag`` (its
  SHA-256) and ``X-Linked-Size``; every answer carries ``X-Repo-Commit``; missing repos,
  revisions and files get 404 with the Hub's ``X-Error-Code``, a gated repo 403 without
  its token. It counts content downloads, so a test can tell a skipped fetch.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tierserve.dev.cluster.procs import free_port
from tierserve.dev.waiting import wait_until

COMMIT = "a" * 40
TOKEN = "hf_test_token"
LFS_SUFFIXES = (".gguf", ".bin", ".safetensors")


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 on a free port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator in memory on a free port; yields ``http://127.0.0.1:PORT``."""
    port = free_port()
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    proc = subprocess.Popen([str(exe), "start", "--host", "127.0.0.1", "--port", str(port),
                             "--in-memory", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or _answers(url), 30,
                   "the Cloud Storage emulator to listen")
        assert proc.poll() is None, f"gcp-storage-emulator exited with {proc.returncode}"
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class HubServer:
    """Repos as ``{"org/name": {"path/in/repo": bytes}}``; ``gated`` need :data:`TOKEN`."""

    repos: dict[str, dict[str, bytes]]
    gated: set[str] = field(default_factory=set)
    downloads: Counter[str] = field(default_factory=Counter)  # content GETs per file

    @contextmanager
    def serve(self) -> Iterator[str]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def log_message(self, format: str, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=10)

    def _answer(self, req: BaseHTTPRequestHandler, *, body: bool) -> None:
        parts = req.path.split("?")[0].lstrip("/").split("/")
        if parts[0] == "lfs" and len(parts) == 2:  # the content URL an LFS file redirects to
            return self._content(req, parts[1], body)
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(req, 404, "", "not a resolve URL")
        repo, revision, path = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        if repo not in self.repos:
            return self._error(req, 401, "RepoNotFound", "Repository not found")
        if repo in self.gated and req.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._error(req, 403, "GatedRepo", "Access to this model is restricted")
        if revision not in ("main", COMMIT):
            return self._error(req, 404, "RevisionNotFound", "Invalid rev id")
        data = self.repos[repo].get(path)
        if data is None:
            return self._error(req, 404, "EntryNotFound", "Entry not found")
        if path.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            return self._send(req, 302, {"Location": f"/lfs/{sha}", "X-Linked-Etag": f'"{sha}"',
                                         "X-Linked-Size": str(len(data))}, b"")
        if body:
            self.downloads[path] += 1
        self._send(req, 200, {"ETag": f'"{git_blob_id(data)}"'}, data if body else b"",
                   length=len(data))

    def _content(self, req: BaseHTTPRequestHandler, sha: str, body: bool) -> None:
        for files in self.repos.values():
            for path, data in files.items():
                if hashlib.sha256(data).hexdigest() == sha:
                    if body:
                        self.downloads[path] += 1
                    return self._send(req, 200, {"ETag": f'"{sha}"'},
                                      data if body else b"", length=len(data))
        self._error(req, 404, "", "no such object")

    def _error(self, req: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {})}
        self._send(req, status, headers, message.encode())

    def _send(self, req: BaseHTTPRequestHandler, status: int, headers: dict[str, str],
              data: bytes, *, length: int | None = None) -> None:
        req.send_response(status)
        req.send_header("X-Repo-Commit", COMMIT)
        for name, value in headers.items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(data) if length is None else length))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)


def storage_init(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``tierserve storage-init ARGS`` through the console script, as the init container
    runs it."""
    exe = Path(sys.executable).with_name("tierserve")
    return subprocess.run([str(exe), "storage-init", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def unchanged(path: Path, before: os.stat_result) -> bool:
    """Whether ``path`` is still the very file it was (no rename over it since)."""
    now = path.stat()
    return (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
