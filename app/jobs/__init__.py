"""Jobs: the durable queue, the worker that runs it, and the `/api/v1/jobs` routes."""
