"""Rendezvous (highest-random-weight) hashing for sticky A/B keys and session affinity.

Weighted rendezvous hashing (score ``-w / ln(u)``, Schindelhauer & Schomaker) keeps a
key on its variant unless that variant's share changes enough to flip the key's own
comparison; a small weight change moves only about that change's share of keys, and
adding or removing an endpoint moves only the keys that belonged to it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

_SCALE = float(1 << 64)


def _unit(key: str, salt: str) -> float:
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    # Map to the open interval (0, 1) so log() never sees 0 or 1.
    return (int.from_bytes(digest, "big") + 0.5) / _SCALE


def weighted_choice(key: str, names: Sequence[str], weights: Sequence[float]) -> int:
    """Index of the arm ``key`` sticks to; arms with weight 0 are never chosen."""
    best, best_score = -1, -math.inf
    for i, (name, weight) in enumerate(zip(names, weights, strict=True)):
        if weight <= 0:
            continue
        score = -weight / math.log(_unit(key, name))
        if score > best_score:
            best, best_score = i, score
    if best < 0:
        raise ValueError("all weights are zero")
    return best


def highest_random(key: str, names: Sequence[str]) -> int:
    """Unweighted rendezvous pick: index of the name ``key`` maps to."""
    return max(range(len(names)), key=lambda i: _unit(key, names[i]))
