"""Start ``wamm-sandbox`` for the benchmarks, with its memory of messages kept out of the collector.

The sandbox records every message it accepts (for ``/_sandbox/counts``). With tens of thousands of them,
each full garbage collection walks them all and stalls the server for 100-200 ms, which Meta's servers
do not do: requests pile up and then arrive together, and the sandbox's one-second windows see bursts
that the sender never sent. Moving what exists to the permanent generation twice a second
(``gc.freeze``) keeps each collection small. Everything else is the ``wamm-sandbox`` command as is.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading


def _freeze_forever(interval_s: float) -> None:
    while True:
        threading.Event().wait(interval_s)
        gc.freeze()


def main() -> int:
    """Run ``wamm-sandbox`` with the given arguments."""
    from airflow_provider_wamm.sandbox.cli import main as sandbox_main

    threading.Thread(target=_freeze_forever, args=(0.5,), daemon=True, name="gc-freeze").start()
    if os.environ.get("WAMM_BENCH_SANDBOX_NICE"):
        with contextlib.suppress(OSError):
            os.nice(int(os.environ["WAMM_BENCH_SANDBOX_NICE"]))
    return sandbox_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
