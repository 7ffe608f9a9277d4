"""The libvips runtime, by step: ``load`` (header checks, decoding, normalisation), ``ops`` (the
operations), ``encode`` (the result), run in order by ``pipeline.run``. Only imported in worker
processes."""
