"""Tasks: the registry of functions, their parameter models, and the `/api/v1/tasks` routes."""
