"""Worker roles for the distributed mode: ``python -m workers urgent|background``."""
