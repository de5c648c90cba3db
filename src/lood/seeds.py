"""Seeds and shards: the low-level helpers every stage uses to stay reproducible.

Seeds derive from config seeds and wildcards (:func:`derive_seed`), never from the clock; an
out-model shard's records are a fixed range of differ.csv (:func:`shard_records`). Nothing here
reads the config, so any stage may import it without depending on :mod:`lood.config`.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(*keys: int | str) -> int:
    """A 32-bit seed derived deterministically from config seeds and wildcards (never the clock)."""
    words = [
        k
        if isinstance(k, int)
        else int.from_bytes(hashlib.sha256(str(k).encode()).digest()[:8], "little")
        for k in keys
    ]
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])


def shard_records(n_records: int, shard_size: int, shard: int) -> range:
    """Positions (in differ.csv order) of the differing records handled by out-model shard ``shard``."""
    start = shard * shard_size
    if shard < 0 or start >= n_records:
        raise ValueError(f"shard {shard} out of range for {n_records} records / size {shard_size}")
    return range(start, min(start + shard_size, n_records))
