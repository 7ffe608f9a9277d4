"""API keys: parsing the settings, signing, verifying."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from imgserver.apikeys import ApiKey, KeyRing, parse_env, parse_file
from imgserver.errors import BadSignature, SignatureRequired
from imgserver.settings import SettingsError

SECRET = "s3cret-s3cret-s3cret"
OTHER = "0ther-0ther-0ther-0ther"
KEYS = (
    f"main:{SECRET},next:{OTHER},old:{SECRET}-legacy:legacy,root:{SECRET}-admin:admin,"
    f"off:{SECRET}-off:disabled,metered:{SECRET}-metered:quota=1"
)


def test_parse_env_flags() -> None:
    keys = {k.name: k for k in parse_env(KEYS)}
    assert keys["main"] == ApiKey("main", SECRET)
    assert keys["old"].legacy and keys["root"].admin and keys["off"].disabled
    assert keys["metered"].quota == 1


@pytest.mark.parametrize(
    "text,problem",
    [
        ("k:short", r"16\+ characters"),
        ("bad key:0123456789abcdef", "key names"),
        ("k:0123456789abcdef:sudo", "unknown flag"),
        ("k:0123456789abcdef:quota=x", "unknown flag"),
        ("k:0123456789abcdef,k:0123456789abcdef", "defined twice"),
    ],
)
def test_bad_key_settings_stop_start_up(text: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=problem):
        KeyRing(parse_env(text))


def test_keys_file(tmp_path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            {
                "keys": [
                    {"key": "a", "secret": SECRET, "quota": 5},
                    {"key": "b", "secret": OTHER, "legacy": True, "disabled": True},
                ]
            }
        )
    )
    a, b = parse_file(path)
    assert (a.quota, b.legacy, b.disabled) == (5, True, True)
    path.write_text(json.dumps({"keys": [{"key": "a", "secret": SECRET, "role": "x"}]}))
    with pytest.raises(SettingsError, match="unknown field"):
        parse_file(path)
    path.write_text("{not json")
    with pytest.raises(SettingsError, match="IMGSERVER_KEYS_FILE"):
        parse_file(path)


def test_signatures_match_the_documented_formulas() -> None:
    spec, query = "passthrough.jpg", "input=http%3A%2F%2Fx%2Fa.jpg&width=300"
    expected = hmac.new(SECRET.encode(), f"{spec}?{query}".encode(), hashlib.sha256).hexdigest()
    assert ApiKey("k", SECRET).sign(spec, query) == expected
    # imgflo-url: md5 of graph + "?" + query + secret
    legacy = hashlib.md5(f"{spec}?{query}{SECRET}".encode()).hexdigest()
    assert ApiKey("k", SECRET, legacy=True).sign(spec, query) == legacy


def test_verify() -> None:
    ring = KeyRing(parse_env(KEYS))
    spec, query = "noop", "input=http://x/a.jpg"
    sig = ring.keys["main"].sign(spec, query)
    assert ring.verify("main", sig, spec, query).name == "main"
    assert ring.verify("main", sig.upper(), spec, query).name == "main"
    with pytest.raises(SignatureRequired):
        ring.verify(None, None, spec, query)
    for name, signature, q in [
        ("main", sig, query + "&width=1"),  # the query changed
        ("next", sig, query),  # another key
        ("nobody", sig, query),  # no such key
        ("main", "zz" + sig[2:], query),
        ("main", "", query),
    ]:
        with pytest.raises(BadSignature):
            ring.verify(name, signature, spec, q)
    off = ring.keys["off"].sign(spec, query)
    with pytest.raises(BadSignature, match="disabled"):
        ring.verify("off", off, spec, query)
    # no keys configured: the service is open, signed or not
    assert KeyRing([]).verify(None, None, spec, query) is None
    assert KeyRing([]).verify("any", "thing", spec, query) is None


# -- the service -------------------------------------------------------------------------------
