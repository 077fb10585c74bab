"""End-to-end tests against the local control plane (real kube-apiserver).

A regular package, so its modules are ``e2e.<name>`` for pytest and mypy alike.
"""
