"""The Pillow runtime, by step: ``load``, ``ops``, ``encode``, run in order by ``pipeline.run``.
Only imported in worker processes."""
