"""How long the sandbox takes to answer, drawn like Meta's answer times are spread.

An answer (of a send or a read, an error too) takes::

    latency_s + U(0, latency_jitter_s) + median * exp(latency_sigma * N(0, 1)) + spike

``median`` is ``latency_median_s``, or ``latency_step_s`` while the *latency step* is on: from
``latency_step_at_s`` seconds after the first send since the last reset, for ``latency_step_for_s``
seconds (``None``: until the next reset); then answers recover. ``spike`` is ``latency_spike_s`` for a
share ``latency_spike_rate`` of the answers, else 0. The draws come from a seeded ``random.Random``, so
the same seed and the same order of requests give the same times. The server sleeps the time with
``asyncio.sleep``: slow answers overlap and never hold up other requests.
"""

from __future__ import annotations

import math
import random

from airflow_provider_wamm.sandbox.config import SandboxConfig


def in_latency_step(cfg: SandboxConfig, since_first_send: float | None) -> bool:
    """Whether an answer to a request that arrived ``since_first_send`` seconds after the first send
    falls in the latency step (``None``: no send yet, so the step's clock has not started)."""
    if not cfg.latency_step_s or since_first_send is None or since_first_send < cfg.latency_step_at_s:
        return False
    return cfg.latency_step_for_s is None or since_first_send < cfg.latency_step_at_s + cfg.latency_step_for_s


def lognormal_median(cfg: SandboxConfig, since_first_send: float | None) -> float:
    """The median of the log-normal part at that moment (the step's value during the step)."""
    return cfg.latency_step_s if in_latency_step(cfg, since_first_send) else cfg.latency_median_s


def answer_latency(cfg: SandboxConfig, rng: random.Random, since_first_send: float | None) -> float:
    """Seconds the answer to a request takes, drawn from ``rng`` (see the module's formula)."""
    latency = cfg.latency_s
    if cfg.latency_jitter_s:
        latency += rng.random() * cfg.latency_jitter_s
    median = lognormal_median(cfg, since_first_send)
    if median > 0:
        latency += median * math.exp(cfg.latency_sigma * rng.gauss(0.0, 1.0)) if cfg.latency_sigma else median
    if cfg.latency_spike_rate and rng.random() < cfg.latency_spike_rate:
        latency += cfg.latency_spike_s
    return latency


def latency_rng(seed: int) -> random.Random:
    """The random source of answer times for ``seed`` (apart from the faults', so adding latency to a
    configuration does not change which requests fail)."""
    return random.Random(f"latency:{seed}")
