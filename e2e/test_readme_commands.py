"""The README's commands work as written: the platform team's install, upgrade (CRDs
first) and uninstall, and the model owner's apply/get/explain, read from the README's
code blocks and run against the real API server, so an edit that breaks one fails here.

The platform commands run as a second release (``tierserve`` renamed ``readme``, the
namespace ``readme-system``): uninstalling the session's own release would take the
ServiceAccounts the other tests hold tokens of. Not run, and why: ``helm test`` (kwok
runs no container, so its pods never finish; ``e2e/test_chart_install.py`` runs the
leader check under the hook's ServiceAccount) and the ``port-forward`` to the router
(no router process behind kwok's pods; ``e2e/test_router_cluster.py`` serves routes).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tierserve.dev.cluster.harness import ClusterHandle

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
RELEASE, NAMESPACE = "readme", "readme-system"
NOT_RUN = ("helm test", "kubectl port-forward")


def commands(section: str) -> list[list[str]]:
    """The shell commands in the code blocks of the README section that starts with
    ``section`` (comments dropped), as argument lists."""
    text = (ROOT / "README.md").read_text()
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    blocks = text[start:end].split("```")[1::2]
    lines = [line for b in blocks if not b.startswith(("yaml", "python"))
             for line in b.splitlines() if line.strip()]
    return [shlex.split(line, comments=True) for line in lines
            if line.startswith(("helm ", "kubectl "))]


def _renamed(argv: list[str]) -> list[str]:
    """The session's release and namespace swapped for this test's."""
    out = list(argv)
    if out[0] == "helm" and len(out) > 2 and out[2] == "tierserve":
        out[2] = RELEASE
    return [NAMESPACE if a == "tierserve-system" else a for a in out]


def _run(cluster: ClusterHandle, argv: list[str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, cwd=ROOT, env=cluster.env(), capture_output=True, text=True,
                         timeout=180)
    assert res.returncode == 0, f"{shlex.join(argv)}: {res.stderr}"
    return res


def test_platform_commands_install_upgrade_and_uninstall(
        cluster: ClusterHandle, installed: Path) -> None:
    argvs = [_renamed(a) for a in commands("## For the platform team")]
    run = [a for a in argvs if not shlex.join(a).startswith(NOT_RUN)]
    verbs = [" ".join(a[:2]) for a in run]
    assert verbs == ["helm install", "kubectl apply", "kubectl wait", "helm upgrade",
                     "helm uninstall"], verbs
    try:
        for argv in run:
            _run(cluster, argv)
            if argv[:2] == ["helm", "install"]:
                roles = cluster.kubectl("get", "clusterrole", "-o", "name")
                assert f"clusterrole.rbac.authorization.k8s.io/{RELEASE}-operator" in roles
        # what the README says stays: the CRDs
        assert cluster.exists("crd", "llmdeployments.tierserve.io")
        assert not cluster.exists("clusterrole", f"{RELEASE}-operator")
    finally:
        subprocess.run(["helm", "uninstall", RELEASE, "-n", NAMESPACE], cwd=ROOT,
                       env=cluster.env(), capture_output=True, timeout=120, check=False)
        cluster.kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def test_model_owner_commands(cluster: ClusterHandle, installed: Path) -> None:
    argvs = commands("## For model owners")
    run = [a for a in argvs if not shlex.join(a).startswith(NOT_RUN)]
    assert [a[1] for a in run] == ["apply", "get", "get", "explain"], run
    applied = [a[3] for a in run if a[1] == "apply"]
    try:
        out = [_run(cluster, argv).stdout for argv in run]
        assert "llmdeployment.tierserve.io/smollm2-ray" in out[1]
        assert "smollm2-135m-instruct" in out[2]
        assert "Latency targets" in out[3]
    finally:
        for path in applied:
            cluster.kubectl.run("delete", "-f", str(ROOT / path), "--wait=false", check=False)


def test_commands_reads_the_blocks() -> None:
    platform = [shlex.join(a) for a in commands("## For the platform team")]
    assert platform[0].startswith("helm install tierserve charts/tierserve")
    assert any(c.startswith("helm test") for c in platform)
    assert _renamed(["helm", "upgrade", "tierserve", "charts/tierserve", "-n",
                     "tierserve-system"]) == ["helm", "upgrade", RELEASE, "charts/tierserve",
                                              "-n", NAMESPACE]
