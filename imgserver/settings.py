"""Settings: the only module that reads the environment.

Every field of :class:`Settings` is read from ``IMGSERVER_<FIELD NAME IN UPPER CASE>``;
``Settings.from_env()`` parses and validates them, and a bad value stops start-up with a
message naming the variable.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .lifetime import Lifetime
from .runtime.registry import AUTO_TARGET

PREFIX = "IMGSERVER_"
REPO_ROOT = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Settings:
    """Service configuration. Defaults are the safe, single-machine embedded mode."""

    # -- serving
    host: str = "0.0.0.0"
    port: int = 8080
    public_url: str = ""  # base of result URLs; empty: the request's own scheme and host
    delivery: str = "redirect"  # "redirect" (301 to storage) or "proxy" (200 with the bytes)
    request_deadline: float = 25.0  # seconds a GET waits for its job before 503 timeout
    lease_ttl: float = 10.0  # seconds an unrenewed in-flight lease lives: a dead job is retaken
    redirect_max_age: int = 3600  # Cache-Control max-age of 301 answers
    hit_cache_size: int = 10000  # index entries kept in each frontend's memory; 0: none
    hit_cache_ttl: float = 60.0  # seconds such an entry is trusted
    verify_hits: float = 0.01  # fraction of hits whose object is checked in storage afterwards
    result_max_age: int = 31536000  # Cache-Control max-age of stored results
    failure_ttl: int = 60  # seconds a failed source is remembered (and its error cacheable)
    stale_while_revalidate: int = 0  # RFC 5861 on results' Cache-Control; 0: not sent
    stale_if_error: int = 0  # RFC 5861 on results' Cache-Control; 0: not sent
    enable_avif: bool = False  # offer AVIF when negotiating from Accept
    enable_jxl: bool = False  # offer JPEG XL when negotiating from an Accept that names it
    log_level: str = "INFO"
    log_format: str = "text"  # "text" or "json" (one object per line, with request_id)
    access_log: bool = False  # a line per request (at INFO); off: nginx or the CDN logs them

    # -- data
    data_dir: Path = Path("data")
    results_lifetime: int = 0  # days a result lives in storage and in the index; 0: forever
    graphs_dir: Path = REPO_ROOT / "graphs"

    # -- processing
    workers: int = field(default_factory=_cpus)  # image worker processes
    vips_concurrency: int = 0  # libvips threads per worker process; 0: cores / workers
    job_deadline: float = 60.0  # seconds one job may run in a worker process before it is killed
    enable_svg: bool = False  # decode SVG sources (rasterised by libvips' svgload, librsvg)
    background_nice: int = 10  # niceness of the image processes running background jobs

    # -- access
    keys: str = ""  # API keys "key:secret[:flag...]", comma separated (see apikeys.py)
    keys_file: str = ""  # JSON file of API keys
    allowed_sources: str = ""  # glob patterns of source hosts, comma separated; empty: any

    # -- sources
    allow_private_sources: bool = False
    fetch_connect_timeout: float = 5.0
    fetch_read_timeout: float = 10.0
    fetch_total_timeout: float = 30.0
    fetch_max_redirects: int = 5

    # -- distributed mode: each one set switches its backend from the embedded default
    redis_url: str = ""  # cache index, task records, in-flight leases, events
    amqp_url: str = ""  # job queues (then workers run as `python -m workers urgent|background`)
    amqp_queue_type: str = "classic"  # "classic" or "quorum" (replicated; RabbitMQ 3.10+)
    s3_bucket: str = ""  # results and originals
    s3_endpoint_url: str = ""  # any S3-compatible store; empty: AWS
    s3_region: str = "us-east-1"
    s3_prefix: str = ""  # key prefix inside the bucket, joined as is: "imgserver/"
    s3_public_url: str = ""  # redirects go to <this>/<key>; empty: presigned URLs
    s3_acl: str = ""  # canned ACL put on objects, e.g. public-read; empty: none
    s3_presign_expiry: int = 86400
    s3_lifecycle: bool = True  # put the bucket's lifecycle rule for results_lifetime at start-up
    index_ttl: int = 0  # seconds an index entry lives at most; 0: as long as its result
    task_ttl: int = 7 * 86400  # seconds a task record lives in Redis
    job_max_attempts: int = 4  # tries of a job whose source fails transiently (5xx, timeout)
    retry_backoff: float = 0.5  # first retry delay in seconds, doubled each time
    retry_backoff_max: float = 15.0  # the longest retry delay (each one then jittered down)
    retry_budget: float = 300.0  # seconds a background job retries through a backend outage
    worker_metrics_port: int = 0  # `python -m workers`: serve /metrics here; 0: not at all

    # -- limits
    max_source_bytes: int = 50_000_000
    max_source_pixels: int = 50_000_000
    max_output_pixels: int = 25_000_000
    max_dimension: int = 16384  # largest width/height parameter
    # quality=auto: the SSIMULACRA2 score the chosen quality reaches (80: very high quality)
    auto_quality_target: float = AUTO_TARGET
    max_frames: int = 500  # frames kept from an animated source
    max_queue_urgent: int = 500  # jobs waiting in a queue before new ones get 429 overloaded
    max_queue_background: int = 10000
    worker_memory_limit: int = 2_000_000_000  # bytes of address space per image process; 0: none

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``IMGSERVER_*`` variables (then ``overrides``) and validate."""
        env = os.environ if environ is None else environ
        hints = typing.get_type_hints(cls)
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            name = PREFIX + f.name.upper()
            if name in env:
                values[f.name] = _parse(name, env[name], hints[f.name])
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError naming the first setting that cannot work."""
        positive = (
            "port",
            "workers",
            "request_deadline",
            "job_deadline",
            "fetch_connect_timeout",
            "fetch_read_timeout",
            "fetch_total_timeout",
            "max_source_bytes",
            "max_source_pixels",
            "max_output_pixels",
            "max_dimension",
            "max_frames",
            "max_queue_urgent",
            "max_queue_background",
        )
        for name in positive:
            if not getattr(self, name) > 0:  # also refuses NaN
                raise SettingsError(f"{PREFIX}{name.upper()} must be positive")
        if not 0 < self.port < 65536:
            raise SettingsError(f"{PREFIX}PORT must be a TCP port, not {self.port}")
        if self.delivery not in ("redirect", "proxy"):
            raise SettingsError(f"{PREFIX}DELIVERY must be 'redirect' or 'proxy'")
        for name in (
            "vips_concurrency",
            "fetch_max_redirects",
            "redirect_max_age",
            "result_max_age",
            "failure_ttl",
            "stale_while_revalidate",
            "stale_if_error",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()} cannot be negative")
        if self.log_level.upper() not in logging.getLevelNamesMapping():
            raise SettingsError(f"{PREFIX}LOG_LEVEL {self.log_level!r} is not a logging level")
        if self.log_format not in ("text", "json"):
            raise SettingsError(f"{PREFIX}LOG_FORMAT must be 'text' or 'json'")
        if self.amqp_queue_type not in ("classic", "quorum"):
            raise SettingsError(f"{PREFIX}AMQP_QUEUE_TYPE must be 'classic' or 'quorum'")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError(f"{PREFIX}PUBLIC_URL must start with http:// or https://")
        if self.amqp_url and not self.redis_url:
            raise SettingsError(
                f"{PREFIX}AMQP_URL needs {PREFIX}REDIS_URL: separate frontends and workers share "
                "the cache index, task records and events through Redis"
            )
        if not self.lease_ttl >= 1:
            raise SettingsError(f"{PREFIX}LEASE_TTL must be at least 1 s")
        if not 0 <= self.background_nice <= 19:
            raise SettingsError(f"{PREFIX}BACKGROUND_NICE must be from 0 to 19")
        if self.job_max_attempts < 1:
            raise SettingsError(f"{PREFIX}JOB_MAX_ATTEMPTS must be at least 1")
        if not self.retry_backoff_max > 0:
            raise SettingsError(f"{PREFIX}RETRY_BACKOFF_MAX must be positive")
        if self.retry_backoff > self.retry_backoff_max:
            raise SettingsError(
                f"{PREFIX}RETRY_BACKOFF ({self.retry_backoff:g} s) cannot be longer than "
                f"{PREFIX}RETRY_BACKOFF_MAX ({self.retry_backoff_max:g} s)"
            )
        for name in (
            "retry_backoff",
            "retry_budget",
            "results_lifetime",
            "index_ttl",
            "task_ttl",
            "worker_metrics_port",
            "worker_memory_limit",
            "hit_cache_size",
            "hit_cache_ttl",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()} cannot be negative")
        if not 0 <= self.verify_hits <= 1:
            raise SettingsError(f"{PREFIX}VERIFY_HITS must be a fraction from 0 to 1")
        if self.results_lifetime and self.index_ttl > self.lifetime.seconds:
            raise SettingsError(
                f"{PREFIX}INDEX_TTL ({self.index_ttl} s) is longer than "
                f"{PREFIX}RESULTS_LIFETIME ({self.results_lifetime} days = "
                f"{self.lifetime.seconds} s): index entries would point at expired results. "
                f"Leave {PREFIX}INDEX_TTL at 0 (entries then live as long as their results) "
                "or make it shorter"
            )
        if not 0 <= self.auto_quality_target <= 100:
            raise SettingsError(f"{PREFIX}AUTO_QUALITY_TARGET must be an SSIMULACRA2 score, 0-100")
        if not self.graphs_dir.is_dir():
            raise SettingsError(f"{PREFIX}GRAPHS_DIR {self.graphs_dir} is not a directory")

    @property
    def threads_per_worker(self) -> int:
        """libvips threads in each worker process, sized so workers x threads ~ cores."""
        return self.vips_concurrency or max(1, _cpus() // self.workers)

    @property
    def lease_interval(self) -> float:
        """Seconds between two renewals of an in-flight lease by its holder, and between two
        looks at it by the requests waiting for its job: 5 per lease, so a holder may miss 4."""
        return self.lease_ttl / 5

    @functools.cached_property
    def lifetime(self) -> Lifetime:
        """How long results and their index entries live (see lifetime.py)."""
        return Lifetime(self.results_lifetime, self.index_ttl)

    @functools.cached_property
    def source_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip().lower() for p in self.allowed_sources.split(",") if p.strip())

    @property
    def embedded(self) -> bool:
        """No broker configured: this process runs the workers too."""
        return not self.amqp_url

    @property
    def db_path(self) -> Path:
        return self.data_dir / "imgserver.sqlite3"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"


def _parse(name: str, raw: str, hint: object) -> object:
    if isinstance(hint, types.UnionType):  # "str | None" and the like
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    text = raw.strip()
    try:
        if hint is bool:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected one of 1/0, true/false, yes/no, on/off")
        if hint is int:
            return int(text.replace("_", ""))
        if hint is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
            return value
        if hint is Path:
            return Path(text)
        return text
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None
