"""Unit tests of the dev cluster's pure parts: versions, node manifests, PKI, processes."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tierserve.core.catalog import GFD_PRODUCT_LABEL, GKE_ACCELERATOR_LABEL, get
from tierserve.dev.cluster import build, cli, cluster, nodes, paths, pki, procs
from tierserve.dev.cluster.components import Layout, Ports, apiserver, kwok


def test_versions_come_from_go_mod() -> None:
    versions = paths.module_versions()
    assert versions["k8s.io/kubernetes"].startswith("v1.33.")
    assert paths.kubernetes_version() == versions["k8s.io/kubernetes"]
    assert {b.name for b in build.BINARIES} == {
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "helm"}
    for item in build.BINARIES:
        assert item.directory.name == f"{item.name}-{item.version}"


def test_every_staging_module_is_replaced_by_its_published_version() -> None:
    gomod = (paths.go_module_dir() / "go.mod").read_text()
    minor = paths.kubernetes_version().lstrip("v").split(".", 1)[1]
    replaced = [line.split() for line in gomod.splitlines() if "=>" in line]
    assert len(replaced) >= 30
    for source, _, target, version in replaced:
        assert source == target and source.startswith("k8s.io/")
        assert version == f"v0.{minor}"


def test_parse_requires_ignores_comments_and_replace_blocks() -> None:
    text = ("// a comment with a version v1.2.3\nmodule x\n\nrequire (\n\ta.io/b v1.0.0\n"
            "\tc.io/d v0.1.0 // indirect\n)\nrequire e.io/f v2.0.0\n"
            "replace (\n\ta.io/b => a.io/b v9.9.9\n)\n")
    assert paths.parse_requires(text) == {
        "a.io/b": "v1.0.0", "c.io/d": "v0.1.0", "e.io/f": "v2.0.0"}


def test_kube_ldflags_stamp_the_server_version() -> None:
    flags = build.binary("kube-apiserver").ldflags("v1.33.13")
    assert "-X k8s.io/component-base/version.gitVersion=v1.33.13" in flags
    assert "-X k8s.io/component-base/version.gitMinor=33" in flags


def test_missing_uses_the_version_keyed_cache(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERSERVE_CACHE_DIR", str(tmp_path))
    assert len(build.missing()) == len(build.BINARIES)
    helm = build.binary("helm")
    helm.directory.mkdir(parents=True)
    helm.path.write_text("")
    assert helm not in build.missing()
    assert str(tmp_path / "bin") in str(helm.path)


def test_no_go_toolchain_means_build_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GO", "definitely-not-a-go-binary")
    with pytest.raises(build.BuildUnavailable):
        build.go_executable()


def test_gpu_node_manifest_carries_catalog_labels_and_capacity() -> None:
    pool = nodes.NodePool("gpu-l4", 1, "g2-standard-48", 48, 192, "L4", 4)
    node = nodes.node_manifest(pool, 0)
    labels = node["metadata"]["labels"]
    l4 = get("L4")
    assert labels[GFD_PRODUCT_LABEL] == l4.product_label[1]
    assert labels[GKE_ACCELERATOR_LABEL] == l4.gke_label
    assert labels["nvidia.com/gpu.count"] == "4"
    assert labels["type"] == "kwok"
    assert node["metadata"]["annotations"][nodes.KWOK_ANNOTATION] == "fake"
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["status"]["capacity"]["cpu"] == "48"
    assert node["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]


def test_amd_and_cpu_nodes() -> None:
    amd = nodes.node_manifest(nodes.NodePool("mi", 1, "x", 64, 512, "MI300X", 8), 0)
    assert amd["status"]["capacity"]["amd.com/gpu"] == "8"
    assert "nvidia.com/gpu.count" not in amd["metadata"]["labels"]
    cpu = nodes.node_manifest(nodes.NodePool("cpu", 1, "n2-standard-16", 16, 64), 0)
    assert "nvidia.com/gpu" not in cpu["status"]["capacity"]
    assert cpu["spec"] == {}


def test_default_layout_has_several_gpu_types_and_cpu_nodes() -> None:
    items = nodes.manifests(nodes.default_pools(cpu_nodes=3))
    products = {n["metadata"]["labels"].get(GFD_PRODUCT_LABEL) for n in items}
    assert {"NVIDIA-H100-80GB-HBM3", "NVIDIA-L4", "NVIDIA-A100-SXM4-80GB", None} <= products
    assert sum(1 for n in items if n["metadata"]["name"].startswith("cpu-")) == 3
    assert len({n["metadata"]["name"] for n in items}) == len(items)


def test_pki_and_kubeconfig(tmp_path: Path) -> None:
    material = pki.generate(tmp_path / "pki")
    serving = x509.load_pem_x509_certificate(material.cert("serving").read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    admin = x509.load_pem_x509_certificate(material.cert("admin").read_bytes())
    assert "system:masters" in admin.subject.rfc4514_string()
    assert (material.key("admin").stat().st_mode & 0o777) == 0o600
    config = pki.kubeconfig(material, "admin", "https://127.0.0.1:1234", "c")
    path = pki.write_kubeconfig(tmp_path / "kc", config)
    loaded = yaml.safe_load(path.read_text())
    assert loaded["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1234"


def test_command_lines_bind_to_localhost(tmp_path: Path) -> None:
    lay = Layout(tmp_path, Ports(1, 2, 3, 4, 5, 6))
    argv = apiserver(lay)
    assert "--bind-address=127.0.0.1" in argv and "--secure-port=3" in argv
    assert any(a.startswith("--enable-admission-plugins=") and "ExtendedResourceToleration"
               in a for a in argv)
    assert "--server-address=127.0.0.1:6" in kwok(lay)


def test_start_and_stop_by_pid(tmp_path: Path) -> None:
    pid = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                      tmp_path)
    pidfile = tmp_path / "pids" / "sleeper.pid"
    assert procs.is_running(pidfile)
    assert procs.read_pidfile(pidfile) == (pid, procs.start_time(pid))
    assert procs.stop(pidfile)
    assert not pidfile.exists()
    assert not procs.stop(pidfile)


def test_stale_pidfile_with_recycled_pid_is_not_signalled(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        pidfile = tmp_path / "x.pid"
        pidfile.write_text(f"{other.pid} 1\n")  # same pid, different start time
        assert not procs.is_running(pidfile)
        assert not procs.stop(pidfile)
        assert other.poll() is None
        other.kill()


def test_down_refuses_foreign_directories(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(cluster.ClusterError):
        cluster.down(cluster.Options(state=tmp_path))
    assert (tmp_path / "precious.txt").exists()


def test_down_removes_owned_state(tmp_path: Path) -> None:
    state = tmp_path / "c"
    state.mkdir()
    (state / cluster.STATE_FILE).write_text("{}")
    assert cluster.down(cluster.Options(state=state)) == []
    assert not state.exists()


def test_env_lines(tmp_path: Path) -> None:
    lay = Layout(tmp_path, Ports(1, 2, 3, 4, 5, 6))
    lines = cluster.env_lines(lay)
    assert lines[0] == f"export KUBECONFIG={tmp_path / 'kubeconfig'}"
    assert "helm-" in lines[1] and lines[1].endswith(':$PATH"')


def test_cli_registers_every_action() -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    for action in ("build", "up", "down", "status", "env"):
        args = parser.parse_args(["cluster", action])
        assert callable(args.func)


def test_harness_refuses_non_local_servers(tmp_path: Path) -> None:
    from tierserve.dev.cluster.harness import NotLocal, assert_local_only

    def write(server: str) -> Path:
        path = tmp_path / "kc"
        entry = {"name": "c", "cluster": {"server": server}}
        path.write_text(yaml.safe_dump({"clusters": [entry]}))
        return path

    assert_local_only(write("https://127.0.0.1:6443"))
    for server in ("https://10.0.0.1:6443", "https://localhost.evil.com", "https://prod.example"):
        with pytest.raises(NotLocal):
            assert_local_only(write(server))


def test_build_without_go_skips_locally_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setenv("TIERSERVE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GO", "definitely-not-a-go-binary")
    args = argparse.Namespace()
    monkeypatch.delenv("CI", raising=False)
    assert cli._build(args) == 0
    monkeypatch.setenv("CI", "1")
    assert cli._build(args) == 3


def test_free_ports_are_distinct() -> None:
    ports = procs.free_ports(20)
    assert len(set(ports)) == 20 and all(p > 0 for p in ports)
