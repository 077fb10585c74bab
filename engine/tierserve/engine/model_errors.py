"""The errors of model resolution, shared by the resolver and the remote sources.

Defined apart from :mod:`tierserve.engine.model_source` so the remote sources
(``source_s3``, ``source_gcs``, ``source_hf``) can raise them without importing the
resolver that imports them. Every message names the URI and the cause.
"""

from __future__ import annotations


class ModelSourceError(ValueError):
    """The URI is malformed, names a model that is not there, or cannot be fetched."""


class UnsupportedSource(ModelSourceError):
    """A well-formed URI this process cannot fetch (no client for it, or no mount)."""


STORAGE_EXTRA = "tierserve[storage]"


def missing_client(scheme: str, package: str, exc: ImportError) -> UnsupportedSource:
    """The error for a remote scheme whose client library is not installed."""
    return UnsupportedSource(
        f"{scheme}:// model URIs need the {package} package ({exc.name or package} is not "
        f"importable here): pip install '{STORAGE_EXTRA}' (the storage-initializer image "
        "has it)")
