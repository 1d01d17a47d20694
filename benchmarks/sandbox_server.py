"""Start ``wamm-sandbox`` for the benchmarks, with its memory of messages kept out of the collector.

The sandbox records every message it accepts (for ``/_sandbox/counts``). With tens of thousands of them,
each full garbage collection walks them all and stalls the server for 100-200 ms, which Meta's servers
do not do: requests pile up and then arrive together, and the sandbox's one-second windows see bursts
that the sender never sent. Moving what exists to the permanent generation twice a second
(``gc.freeze``) keeps each collection small.

Where allowed (root, or ``CAP_SYS_NICE``), the sandbox also runs at a raised scheduling priority: on a
shared machine, time it spends waiting for a CPU delays when it records arrivals, which bunches
them up in its windows although the sender spaced them. The sender keeps the default priority, so its
own jitter counts in full. Everything else is the ``wamm-sandbox`` command as is.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import time


def _freeze_forever(interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        gc.freeze()


def main() -> int:
    """Run ``wamm-sandbox`` with the given arguments."""
    from airflow_provider_wamm.sandbox.cli import main as sandbox_main

    threading.Thread(target=_freeze_forever, args=(0.5,), daemon=True, name="gc-freeze").start()
    with contextlib.suppress(OSError):  # needs root or CAP_SYS_NICE; without, the default priority
        os.nice(-10)
    return sandbox_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
