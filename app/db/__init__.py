"""Database plumbing: the `Database` handle, declarative base and shared column types."""
