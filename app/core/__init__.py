"""Shared plumbing: settings, errors, logging, clock and ids."""
