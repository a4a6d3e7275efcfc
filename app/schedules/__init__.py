"""Schedules: tasks that run by themselves, on a cron expression or a fixed interval."""
