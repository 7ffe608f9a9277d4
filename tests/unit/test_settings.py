"""Settings: parsing IMGSERVER_* variables, validation, derived values."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from imgserver import settings as settings_module
from imgserver.settings import PREFIX, REPO_ROOT, Settings, SettingsError


def env(**values: str) -> dict[str, str]:
    return {PREFIX + k.upper(): v for k, v in values.items()}


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.port == 8080
    assert s.delivery == "redirect"
    assert s.enable_avif is False
    assert s.enable_svg is False
    assert s.access_log is False
    assert s.allow_private_sources is False
    assert s.graphs_dir == REPO_ROOT / "graphs"
    assert s.workers >= 1
    assert s.db_path == Path("data") / "imgserver.sqlite3"
    assert s.storage_dir == Path("data") / "storage"


def test_every_field_has_a_variable(tmp_path: Path) -> None:
    """Each field is read from IMGSERVER_<NAME>: a value set for every field is seen."""
    values = {
        "host": "127.0.0.1",
        "port": "9000",
        "public_url": "https://img.example.com",
        "delivery": "proxy",
        "request_deadline": "5",
        "lease_ttl": "30",
        "redirect_max_age": "60",
        "result_max_age": "600",
        "enable_avif": "true",
        "log_level": "debug",
        "data_dir": "/tmp/x",
        "graphs_dir": str(tmp_path),
        "workers": "3",
        "vips_concurrency": "2",
        "job_deadline": "7.5",
        "allow_private_sources": "1",
        "fetch_connect_timeout": "1",
        "fetch_read_timeout": "2",
        "fetch_total_timeout": "3",
        "fetch_max_redirects": "0",
        "max_source_bytes": "1000",
        "max_source_pixels": "2000",
        "max_output_pixels": "3000",
        "max_dimension": "400",
        "max_frames": "5",
        "redis_url": "redis://r:6379/0",
        "amqp_url": "amqp://q/",
        "s3_bucket": "b",
        "s3_endpoint_url": "http://s3:9000",
        "s3_region": "eu-west-1",
        "s3_prefix": "img/",
        "s3_public_url": "https://cdn.example.com",
        "s3_acl": "public-read",
        "s3_presign_expiry": "60",
        "index_ttl": "10",
        "task_ttl": "20",
        "job_max_attempts": "2",
        "retry_backoff": "0.1",
        "retry_backoff_max": "2.5",
        "retry_budget": "60",
        "worker_metrics_port": "9100",
        "keys": "k:0123456789abcdef",
        "keys_file": "/etc/keys.json",
        "allowed_sources": "*.example.com",
        "max_queue_urgent": "9",
        "hit_cache_size": "5",
        "hit_cache_ttl": "2",
        "verify_hits": "0.5",
        "results_lifetime": "30",
        "s3_lifecycle": "0",
        "max_queue_background": "99",
        "worker_memory_limit": "1000000",
        "enable_svg": "1",
        "access_log": "1",
        "background_nice": "5",
        "failure_ttl": "30",
        "stale_while_revalidate": "60",
        "stale_if_error": "86400",
        "log_format": "json",
        "amqp_queue_type": "quorum",
        "enable_jxl": "1",
        "auto_quality_target": "72.5",
    }
    assert set(values) == {f.name for f in dataclasses.fields(Settings)}
    s = Settings.from_env(env(**values))
    defaults = Settings()
    for name in values:
        assert getattr(s, name) != getattr(defaults, name), name


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("port", "9000", 9000),
        ("port", " 9000 ", 9000),
        ("max_source_bytes", "50_000_000", 50_000_000),
        ("max_source_bytes", "1_000", 1000),
        ("max_frames", "+5", 5),
        ("workers", "4", 4),
        ("request_deadline", "2.5", 2.5),
        ("request_deadline", "10", 10.0),
        ("request_deadline", "1e1", 10.0),
        ("job_deadline", "0.5", 0.5),
        ("enable_avif", "1", True),
        ("enable_avif", "true", True),
        ("enable_avif", "TRUE", True),
        ("enable_avif", "yes", True),
        ("enable_avif", "on", True),
        ("enable_avif", "0", False),
        ("enable_avif", "false", False),
        ("enable_avif", "No", False),
        ("enable_avif", "off", False),
        ("enable_avif", "", False),
        ("allow_private_sources", "yes", True),
        ("data_dir", "/var/lib/imgserver", Path("/var/lib/imgserver")),
        ("data_dir", "rel/dir", Path("rel/dir")),
        ("graphs_dir", str(REPO_ROOT / "graphs"), REPO_ROOT / "graphs"),
        ("delivery", "proxy", "proxy"),
        ("public_url", "https://cdn.example.com", "https://cdn.example.com"),
        ("host", "::", "::"),
        ("log_level", "warning", "warning"),
    ],
)
def test_parse(name: str, raw: str, expected: Any) -> None:
    s = Settings.from_env(env(**{name: raw}))
    value = getattr(s, name)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("port", "http"),
        ("port", "80.0"),
        ("port", ""),
        ("max_source_bytes", "50MB"),
        ("max_source_bytes", "1e6"),
        ("workers", "two"),
        ("request_deadline", "soon"),
        ("request_deadline", "nan"),
        ("request_deadline", "inf"),
        ("job_deadline", "-inf"),
        ("enable_avif", "maybe"),
        ("enable_avif", "2"),
        ("allow_private_sources", "y"),
    ],
)
def test_unparseable_value_names_the_variable(name: str, raw: str) -> None:
    variable = PREFIX + name.upper()
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: raw})
    assert variable in str(info.value)
    assert repr(raw) in str(info.value)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("delivery", "foo"),
        ("delivery", "Redirect"),
        ("port", "0"),
        ("port", "-1"),
        ("port", "65536"),
        ("workers", "0"),
        ("request_deadline", "0"),
        ("job_deadline", "-1"),
        ("fetch_connect_timeout", "0"),
        ("fetch_read_timeout", "-0.5"),
        ("fetch_total_timeout", "0"),
        ("max_source_bytes", "0"),
        ("max_source_bytes", "-1"),
        ("max_source_pixels", "-1"),
        ("max_output_pixels", "0"),
        ("max_dimension", "0"),
        ("max_frames", "-5"),
        ("vips_concurrency", "-1"),
        ("fetch_max_redirects", "-1"),
        ("redirect_max_age", "-1"),
        ("result_max_age", "-1"),
        ("public_url", "cdn.example.com"),
        ("public_url", "ftp://cdn.example.com"),
        ("graphs_dir", "/nonexistent/graphs"),
        ("log_level", "LOUD"),
        ("retry_backoff_max", "0"),
        ("retry_backoff", "20"),  # longer than the longest delay
        ("retry_budget", "-1"),
        ("results_lifetime", "-1"),
        ("verify_hits", "-0.1"),
        ("verify_hits", "1.5"),
        ("verify_hits", "nan"),
        ("lease_ttl", "0.5"),
        ("lease_ttl", "-10"),
        ("background_nice", "-1"),
        ("background_nice", "20"),
        ("failure_ttl", "-1"),
        ("stale_while_revalidate", "-5"),
        ("stale_if_error", "-5"),
        ("log_format", "JSON"),
        ("log_format", "logfmt"),
        ("amqp_queue_type", "stream"),
    ],
)
def test_invalid_value_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env(**{name: raw}))
    assert PREFIX + name.upper() in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"delivery": "foo"},
        {"port": 0},
        {"max_source_bytes": -1},
        {"request_deadline": float("nan")},
        {"max_frames": 0},
    ],
)
def test_validate_rejects(overrides: dict[str, Any]) -> None:
    s = Settings(**overrides)
    with pytest.raises(SettingsError):
        s.validate()
    with pytest.raises(SettingsError):
        Settings.from_env({}, **overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"port": 1},
        {"port": 65535},
        {"vips_concurrency": 0},
        {"fetch_max_redirects": 0},
        {"redirect_max_age": 0},
        {"delivery": "proxy"},
        {"public_url": "http://x"},
        {"background_nice": 0},
        {"background_nice": 19},
        {"failure_ttl": 0},
    ],
)
def test_validate_accepts(overrides: dict[str, Any]) -> None:
    Settings(**overrides).validate()


def test_overrides_win_over_the_environment() -> None:
    s = Settings.from_env(env(port="9000", delivery="proxy"), port=9100)
    assert (s.port, s.delivery) == (9100, "proxy")


def test_unrelated_variables_are_ignored() -> None:
    s = Settings.from_env({"PORT": "1", "IMGSERVERPORT": "2", "imgserver_port": "3"})
    assert s.port == 8080


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cpus", "workers", "concurrency", "threads"),
    [
        (8, 8, 0, 1),
        (8, 4, 0, 2),
        (8, 3, 0, 2),
        (8, 16, 0, 1),  # never zero
        (1, 1, 0, 1),
        (16, 1, 0, 16),
        (8, 4, 3, 3),  # set explicitly
        (2, 8, 5, 5),
    ],
)
def test_threads_per_worker(
    monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int, concurrency: int, threads: int
) -> None:
    monkeypatch.setattr(settings_module, "_cpus", lambda: cpus)
    s = Settings(workers=workers, vips_concurrency=concurrency)
    assert s.threads_per_worker == threads


def test_workers_default_to_the_cpu_count() -> None:
    assert Settings().workers == settings_module._cpus() >= 1
    assert Settings.from_env({}).workers == settings_module._cpus()


def test_results_lifetime_sets_the_index_ttl_which_may_only_shorten_it() -> None:
    assert Settings().lifetime.longest_entry is None  # forever, as before
    assert Settings(index_ttl=60).lifetime.longest_entry == 60  # an index TTL alone: as before
    assert Settings(results_lifetime=2).lifetime.longest_entry == 2 * 86400
    assert Settings(results_lifetime=2, index_ttl=3600).lifetime.longest_entry == 3600
    Settings(results_lifetime=2, index_ttl=2 * 86400).validate()  # as long: fine


def test_an_index_ttl_longer_than_the_results_lifetime_is_refused() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env(results_lifetime="1", index_ttl="86401"))
    message = str(info.value)
    assert "IMGSERVER_INDEX_TTL (86401 s)" in message
    assert "IMGSERVER_RESULTS_LIFETIME (1 days = 86400 s)" in message
