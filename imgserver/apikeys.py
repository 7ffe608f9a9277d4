"""API keys and signed URLs.

A signed request is ``/graph/{key}/{signature}/{graph}[.{ext}]?{query}`` where ``signature`` is
the hex HMAC-SHA256, under the key's secret, of ``{graph}[.{ext}]?{query}`` exactly as sent —
or, for a key marked ``legacy``, imgflo's ``md5({graph}[.{ext}]?{query}{secret})``, so imgflo-url
clients keep working. Several keys may be valid at once (rotation); a key can be disabled, be
an admin key (``_nocache``, cache purge), or carry a processing quota.

Keys come from ``IMGSERVER_KEYS`` (``key:secret[:flag...]`` items, comma separated; flags:
``legacy``, ``admin``, ``disabled``, ``quota=N``) and/or ``IMGSERVER_KEYS_FILE``, a JSON file
``{"keys": [{"key", "secret", "legacy", "admin", "disabled", "quota"}]}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import BadSignature, SignatureRequired
from .settings import Settings, SettingsError

KEY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HEX = re.compile(r"^[0-9a-fA-F]+$")
MIN_SECRET = 16


@dataclass(frozen=True)
class ApiKey:
    name: str
    secret: str
    legacy: bool = False
    admin: bool = False
    disabled: bool = False
    quota: int | None = None  # results it may have computed; None: unlimited

    def sign(self, spec: str, raw_query: str) -> str:
        """The signature of ``{spec}?{raw_query}`` under this key."""
        message = f"{spec}?{raw_query}"
        if self.legacy:
            return hashlib.md5((message + self.secret).encode(), usedforsecurity=False).hexdigest()
        return hmac.new(self.secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class KeyRing:
    """The configured keys, by name. Empty: the service is open (no signatures checked)."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        by_name: dict[str, ApiKey] = {}
        for key in keys:
            if key.name in by_name:
                raise SettingsError(f"API key {key.name!r} is defined twice")
            by_name[key.name] = key
        self.keys: Mapping[str, ApiKey] = MappingProxyType(by_name)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        keys = list(parse_env(settings.keys))
        if settings.keys_file:
            keys += parse_file(Path(settings.keys_file))
        return cls(keys)

    def verify(
        self, name: str | None, signature: str | None, spec: str, raw_query: str
    ) -> ApiKey | None:
        """The key a request is signed with; None for an unsigned request to an open service.

        403 ``signature_required`` when keys are configured and the request is unsigned,
        403 ``bad_signature`` for an unknown or disabled key or a signature that does not match.
        """
        if name is None or signature is None:
            if self.enabled:
                raise SignatureRequired(
                    "this service needs signed URLs: /graph/{key}/{signature}/…"
                )
            return None
        if not self.enabled:
            return None  # nothing to check against: an open service accepts signed URLs too
        key = self.keys.get(name)
        expected = key.sign(spec, raw_query) if key is not None else ""
        # compare_digest on every path, so timing tells nothing about which part was wrong
        matches = hmac.compare_digest(expected.encode(), signature.lower().encode())
        if key is None or not matches:
            raise BadSignature("the signature does not match the request")
        if key.disabled:
            raise BadSignature(f"API key {name!r} is disabled")
        return key

    def signed_path(self, name: str, spec: str, raw_query: str) -> str:
        """``/graph/{key}/{signature}/{spec}?{query}``; for ``spec`` "cache" (a purge),
        ``/cache/{key}/{signature}?{query}``."""
        key = self.keys[name]
        query = f"?{raw_query}" if raw_query else ""
        signature = key.sign(spec, raw_query)
        if spec == "cache":
            return f"/cache/{key.name}/{signature}{query}"
        return f"/graph/{key.name}/{signature}/{spec}{query}"


def parse_env(text: str) -> list[ApiKey]:
    keys = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, rest = item.partition(":")
        secret, _, flags = rest.partition(":")
        options: dict[str, Any] = {}
        for flag in filter(None, flags.split(":")):
            if flag in ("legacy", "admin", "disabled"):
                options[flag] = True
            elif flag.startswith("quota=") and flag[6:].isdigit():
                options["quota"] = int(flag[6:])
            else:
                raise SettingsError(f"IMGSERVER_KEYS: key {name!r} has an unknown flag {flag!r}")
        keys.append(_key(name, secret, options, "IMGSERVER_KEYS"))
    return keys


def parse_file(path: Path) -> list[ApiKey]:
    where = f"IMGSERVER_KEYS_FILE {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{where}: {exc}") from None
    items = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SettingsError(f'{where}: expected {{"keys": [{{"key": ..., "secret": ...}}, ...]}}')
    keys = []
    for item in items:
        extra = set(item) - {"key", "secret", "legacy", "admin", "disabled", "quota"}
        if extra:
            raise SettingsError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        options = {k: item[k] for k in ("legacy", "admin", "disabled", "quota") if k in item}
        keys.append(_key(item.get("key"), item.get("secret"), options, where))
    return keys


def _key(name: Any, secret: Any, options: dict[str, Any], where: str) -> ApiKey:
    if not isinstance(name, str) or not KEY_NAME.match(name):
        raise SettingsError(f"{where}: key names are 1-64 of A-Z a-z 0-9 _ - (got {name!r})")
    if not isinstance(secret, str) or len(secret) < MIN_SECRET:
        raise SettingsError(f"{where}: the secret of key {name!r} needs {MIN_SECRET}+ characters")
    for flag in ("legacy", "admin", "disabled"):
        if not isinstance(options.get(flag, False), bool):
            raise SettingsError(f"{where}: {flag} of key {name!r} must be true or false")
    quota = options.get("quota")
    if quota is not None and (not isinstance(quota, int) or isinstance(quota, bool) or quota < 0):
        raise SettingsError(f"{where}: the quota of key {name!r} must be a whole number >= 0")
    return ApiKey(name, secret, **options)
