"""Tierserve core: API types, GPU catalog, capacity model, shared value types, builders and
the one Kubernetes access layer. Every component may import it; it imports none of them."""
