"""The task execution example: `uvicorn examples.task_execution.main:app`."""
