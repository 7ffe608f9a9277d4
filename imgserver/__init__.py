"""imgserver: a cache-fronted, on-demand image transformation service."""

__version__ = "0.1.0"
