"""Stable sharding of recipients, so several workers can split one campaign without overlap.

The shard of a recipient is a hash of its normalised digits modulo the shard count: the same in
every process, on every machine and with every Python (unlike :func:`hash`, which is salted).
"""

from __future__ import annotations

import hashlib

from airflow_provider_wamm.graph.errors import ConfigurationError


def validate_shard(shard_index: int, shard_count: int) -> None:
    """Raise :class:`ConfigurationError` unless ``0 <= shard_index < shard_count``."""
    if shard_count < 1:
        raise ConfigurationError(f"'shard_count' must be at least 1, got {shard_count}")
    if not 0 <= shard_index < shard_count:
        raise ConfigurationError(
            f"'shard_index' {shard_index} is outside 0..{shard_count - 1} (shard_count={shard_count})"
        )


def shard_of(key: str, shard_count: int) -> int:
    """The shard (``0 .. shard_count - 1``) of a recipient key (normalised E.164 digits).

    :param key: the recipient's digits (normalise first, so ``+49 151...`` and ``49151...`` agree).
    :param shard_count: total number of shards.
    """
    if shard_count <= 1:
        return 0
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


def in_shard(key: str, shard_index: int, shard_count: int) -> bool:
    """Whether the recipient ``key`` belongs to shard ``shard_index`` of ``shard_count``."""
    return shard_count <= 1 or shard_of(key, shard_count) == shard_index


__all__ = ["in_shard", "shard_of", "validate_shard"]
