"""Workers: one row per worker process, refreshed by its heartbeat (see `WorkerPresence`)."""
