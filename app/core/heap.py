"""Garbage collection set for a long-running service process.

CPython's cyclic collector makes a young-generation pass every 700 container allocations, and
each pass walks every young object still alive; the older generations are walked whole, now
and then. A service has a large heap that lives as long as the process (modules, classes,
validators, routes, compiled statements) and a stream of short-lived request objects that
reference counting frees on its own. Under load, walking them cost about a fifth of the
server's CPU per request.

`settle_heap()`, called once the process is set up (`taskexec serve` before it serves, a
worker when it starts), moves what exists into the collector's permanent generation (never
walked again) and makes young passes rarer. Cyclic garbage is still collected, only in larger
steps. Only the first call freezes: a worker starting in a process that settled already (or
in a test process, many times) leaves the frozen set as it is.
"""

import gc

# Container allocations (net of frees) between young-generation passes; CPython's is 700.
YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Freeze the start-up heap out of later collections (once per process) and make young
    passes rarer."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
