"""Artifacts: stored task results and tracebacks, and the `/api/v1/artifacts` routes."""
