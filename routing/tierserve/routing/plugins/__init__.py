"""Pluggable routing decisions behind small async protocols (no I/O, no HTTP client).

In the style of llm-d's scheduler: a request's candidate endpoints pass through
*filters*, are rated by weighted *scorers* that each return 0..1 per endpoint, and a
*picker* chooses one. Tier *classifiers* rate a prompt's difficulty 0..1. Everything is
composed by name from configuration in :func:`tierserve.routing.plugins.balancing.build_scheduler`.
The package must not import an HTTP client (enforced by import-linter) so it stays pure.
"""

from tierserve.routing.plugins.base import (
    EndpointFilter,
    EndpointView,
    Picker,
    RequestInfo,
    Scorer,
    TierClassifier,
)

__all__ = ["EndpointFilter", "EndpointView", "Picker", "RequestInfo", "Scorer", "TierClassifier"]
