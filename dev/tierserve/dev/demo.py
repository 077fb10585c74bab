"""``tierserve-dev demo``: the main job, end to end on this machine.

1. render the example manifests (what the operator will create, without a cluster);
2. bring up the local control plane (``tierserve-dev cluster up``: real kube-apiserver,
   etcd, scheduler, controller manager, kwok GPU nodes);
3. install Tierserve with its Helm chart (CRDs, RBAC);
4. run the operator and ``kubectl apply -f`` the examples;
5. wait until the Triton deployments are Ready and print ``kubectl get llm``.

It then keeps the operator running until Ctrl-C (``--once`` stops after step 5). The
cluster stays up for exploration; ``tierserve-dev cluster down`` removes it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ["ray-llama-8b-h100.yaml", "triton-llama-8b-l4.yaml", "ab-route.yaml",
            "tiered-route.yaml"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="render the examples and run the operator on a local cluster")
    p.add_argument("--once", action="store_true", help="exit after the examples are Ready")
    p.add_argument("--timeout", type=float, default=180.0)
    p.set_defaults(func=run)


def _step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def _wait_ready(kubectl: list[str], names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for name in names:
        left = max(1, int(deadline - time.monotonic()))
        subprocess.run([*kubectl, "wait", "--for=condition=Ready", f"--timeout={left}s",
                        f"llmdeployment/{name}"], check=True)


def run(args: argparse.Namespace) -> int:
    from tierserve.dev.cluster import build, cluster

    files = [str(ROOT / "examples" / f) for f in EXAMPLES]
    _step("tierserve render -f examples/ (children the operator will create)")
    subprocess.run([sys.executable, "-m", "tierserve.cli.main", "render",
                    *(a for f in files for a in ("-f", f))], check=True,
                   stdout=subprocess.DEVNULL)
    print("rendered", len(files), "example files")
    _step("tierserve-dev cluster up")
    layout = cluster.up(cluster.Options(name="demo"))
    kubeconfig = str(layout.kubeconfig())
    env = {**os.environ, "KUBECONFIG": kubeconfig,
           "PATH": os.pathsep.join([*map(str, build.bin_dirs()), os.environ.get("PATH", "")])}
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    _step("helm upgrade --install tierserve charts/tierserve")
    subprocess.run(["helm", "upgrade", "--install", "tierserve", str(ROOT / "charts" /
                                                                      "tierserve"),
                    "-n", "tierserve-system", "--create-namespace",
                    # no Prometheus in the demo cluster for the autoscaler to read
                    "--set", "autoscaler.enabled=false"], env=env, check=True)
    _step("tierserve operator (Ctrl-C to stop)")
    operator = subprocess.Popen([sys.executable, "-m", "tierserve.cli.main", "operator",
                                 "--kubeconfig", kubeconfig, "--lease-namespace",
                                 "tierserve-system"], env=env)
    try:
        _step("kubectl apply -f examples/")
        subprocess.run([*kubectl, "apply", *(a for f in files for a in ("-f", f))], check=True)
        _wait_ready(kubectl, ["llama-8b-triton", "fast-3b"], args.timeout)
        _step("kubectl get llm")
        subprocess.run([*kubectl, "get", "llm"], check=True)
        print(f"\nexport KUBECONFIG={kubeconfig}  # to explore; "
              "`tierserve-dev cluster down --name demo` removes the cluster")
        if not args.once:
            operator.wait()
    except KeyboardInterrupt:
        pass
    finally:
        operator.terminate()
        operator.wait(timeout=30)
    return 0
