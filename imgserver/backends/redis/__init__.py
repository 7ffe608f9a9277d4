"""The Redis backends of the distributed mode, one module each, all on one connection
(``client.RedisConnection``): the cache index (``index.py``), task and image records
(``records.py``), the event bus (``events.py``), in-flight leases (``inflight.py``) and API-key
quotas (``quotas.py``)."""
