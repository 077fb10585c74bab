"""The one client configuration: the in-cluster loader, the token re-read on rotation,
and kopf's login built from the same credentials."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierserve.core.kube.credentials import Credentials, CredentialsError
from tierserve.operator.handlers import connection_info


def _rotate(path: Path, token: str) -> None:
    staged = path.with_name("..new")
    staged.write_text(token + "\n")
    os.replace(staged, path)  # a new inode, like the kubelet's atomic swap


def test_in_cluster_reads_the_service_account_and_follows_rotation(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("not parsed here")
    _rotate(tmp_path / "token", "first")
    creds = Credentials.in_cluster(tmp_path, host="fd00::1", port="443")
    assert creds.server == "https://[fd00::1]:443"
    assert creds.ca_path == str(tmp_path / "ca.crt")
    assert creds.auth_headers() == {"Authorization": "Bearer first"}
    _rotate(tmp_path / "token", "second")
    assert creds.token() == "second"
    login = connection_info(creds)  # kopf's login: same server, the token as of now
    assert (login.server, login.token, login.scheme) == (creds.server, "second", "Bearer")


def test_not_in_a_pod_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="not in a pod"):
        Credentials.in_cluster(tmp_path, host="10.0.0.1", port="443")


async def test_a_missing_kubeconfig_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no usable kubeconfig"):
        await Credentials.from_kubeconfig(str(tmp_path / "absent"))
