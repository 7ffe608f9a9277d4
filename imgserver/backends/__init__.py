"""The backends: one interface each (``base.py``), an embedded and a real implementation of
each, and ``factory.open_backends``, which opens the ones the settings choose."""
