"""A real local Kubernetes control plane with simulated GPU nodes, for e2e tests and demos.

``tierserve-dev cluster build`` compiles the pinned control plane (``hack/k8s``) into a
version-keyed cache; ``tierserve-dev cluster up`` starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok on 127.0.0.1 and registers fake GPU
nodes from the catalog. See ``docs/cluster.md``.
"""
