"""Runnable example services built on taskexec."""
