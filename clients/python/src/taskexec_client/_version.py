"""The client's version: always the version of the taskexec server it is released with."""

__version__ = "0.1.0"
