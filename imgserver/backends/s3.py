"""S3 storage (AWS or any S3-compatible store): results and uploaded originals as objects.

One boto3 client per instance (boto3 clients are thread-safe) and one thread pool the size of
its connection pool: every boto3 call runs there, never on the event loop. botocore's
connection errors, timeouts and error answers become ``errors.Unavailable("s3: ...")`` here;
a missing object is None.

With a results lifetime (``IMGSERVER_RESULTS_LIFETIME`` days), ``open`` makes the bucket expire
results that long after they were written: it puts a lifecycle rule of its own (ID
``imgserver {prefix}results/``) beside the bucket's other rules, which it keeps; without one it
removes that rule. ``IMGSERVER_S3_LIFECYCLE=0`` leaves the configuration to the operator. A rule
of the bucket's that expires results sooner is reported, and so is a configuration this service
may not read or write (s3:GetLifecycleConfiguration, s3:PutLifecycleConfiguration): start-up
goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import quote

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import Unavailable
from ..names import RESULTS_PREFIX
from ..settings import PREFIX, Settings
from .base import Managed, ObjectHead, StoredObject

T = TypeVar("T")
Rule = dict[str, Any]  # a lifecycle rule as boto3 gives and takes it

log = logging.getLogger(__name__)

POOL_SIZE = 32  # connections in the client's pool, and threads that use them
CONNECT_TIMEOUT = 3.0  # seconds to open a connection
READ_TIMEOUT = 5.0  # seconds waiting on one socket read
# Requests in all: first try + one retry ("standard" mode retries transient errors only). Note
# botocore's ``max_attempts`` counts retries only; ``total_max_attempts`` counts the first try.
TOTAL_ATTEMPTS = 2

# Error codes of an object that does not exist (HEAD answers carry only the status).
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Storage(Managed):
    """Objects at ``s3://{s3_bucket}/{s3_prefix}{path}``."""

    def __init__(
        self,
        settings: Settings,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self._config = Config(
            region_name=settings.s3_region,
            signature_version="s3v4",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": TOTAL_ATTEMPTS, "mode": "standard"},
            max_pool_connections=POOL_SIZE,
        )
        self._put_extra: dict[str, str] = {
            "CacheControl": f"public, max-age={settings.result_max_age}, immutable",
        }
        if settings.s3_acl:
            self._put_extra["ACL"] = settings.s3_acl
        self._executor: ThreadPoolExecutor | None = None
        self._client: BaseClient | None = None

    # -- life cycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the client and check that the bucket answers; Unavailable if it does not."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="imgserver-s3")
        if self._client is None:
            # Creating a client reads config files and resolves credentials: off the loop too.
            self._client = await self._run("create client", self._make_client)
        await self._check_bucket()
        await self._apply_lifecycle()

    def _make_client(self) -> BaseClient:
        session = boto3.session.Session()  # not boto3's module-level default session
        return session.client(
            "s3", endpoint_url=self.settings.s3_endpoint_url or None, config=self._config
        )

    async def _check_bucket(self) -> None:
        where = f"bucket {self.bucket!r}" + (
            f" at {self.settings.s3_endpoint_url}" if self.settings.s3_endpoint_url else ""
        )
        try:
            await self._call("head_bucket", Bucket=self.bucket)
        except Unavailable as exc:
            cause = exc.__cause__
            code = _code(cause) if isinstance(cause, ClientError) else ""
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise Unavailable(f"s3: {where} does not exist") from cause
            if code in ("403", "AccessDenied"):
                raise Unavailable(f"s3: access to {where} is denied") from cause
            raise Unavailable(f"s3: {where} does not answer ({cause})") from cause

    async def _apply_lifecycle(self) -> None:
        """The bucket's lifecycle rule for results, as the results lifetime says (see above)."""
        days = self.settings.results_lifetime
        prefix = self.key(RESULTS_PREFIX)
        rule_id = f"imgserver {prefix}"[:255]
        try:
            rules = await self._run("get_bucket_lifecycle_configuration", self._lifecycle_rules)
        except Unavailable as exc:
            if days:  # without a lifetime nothing depends on it: quiet
                log.warning(
                    "%s; cannot check that bucket %r expires results after %d days: set the "
                    "rule yourself, or grant s3:GetLifecycleConfiguration",
                    exc.message,
                    self.bucket,
                    days,
                )
            return
        others = [r for r in rules if r.get("ID") != rule_id]
        for rule in others:
            if _expires_sooner(rule, prefix, days):
                log.warning(
                    "s3: lifecycle rule %r of bucket %r expires objects under %r before the "
                    "results lifetime (%s): the index may point at results it deleted until "
                    "hit checks (%sVERIFY_HITS) find them gone; make %sRESULTS_LIFETIME no "
                    "longer than that rule",
                    rule.get("ID"),
                    self.bucket,
                    prefix,
                    f"{days} days" if days else "forever",
                    PREFIX,
                    PREFIX,
                )
        ours = [r for r in rules if r.get("ID") == rule_id]
        wanted = [_results_rule(rule_id, prefix, days)] if days else []
        if not self.settings.s3_lifecycle or _same_rules(ours, wanted, prefix, days):
            return
        after = f"after {days} days" if days else "never"
        try:
            if others or wanted:
                await self._call(
                    "put_bucket_lifecycle_configuration",
                    Bucket=self.bucket,
                    LifecycleConfiguration={"Rules": others + wanted},
                )
            else:
                await self._call("delete_bucket_lifecycle", Bucket=self.bucket)
        except Unavailable as exc:
            log.warning(
                "%s; cannot set the lifecycle rule %r of bucket %r (results expire %s): set it "
                "yourself, or grant s3:PutLifecycleConfiguration (%sS3_LIFECYCLE=0: leave the "
                "bucket's configuration alone)",
                exc.message,
                rule_id,
                self.bucket,
                after,
                PREFIX,
            )
            return
        log.info("s3: bucket %r: results under %r expire %s", self.bucket, prefix, after)

    def _lifecycle_rules(self) -> list[Rule]:
        try:
            answer = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) == "NoSuchLifecycleConfiguration":
                return []
            raise
        return list(answer.get("Rules", []))

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        client, self._client = self._client, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)  # let running calls finish
        if client is not None:
            await asyncio.to_thread(client.close)

    # -- the Storage protocol ----------------------------------------------------------------

    def key(self, path: str) -> str:
        return self.prefix + path

    async def put(self, path: str, data: bytes, content_type: str) -> None:
        await self._call(
            "put_object",
            Bucket=self.bucket,
            Key=self.key(path),
            Body=data,
            ContentType=content_type,
            **self._put_extra,
        )

    async def get(self, path: str) -> StoredObject | None:
        key = self.key(path)

        def get() -> StoredObject | None:
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
            # Read here, off the loop: the body streams from the socket. Not `with body as f`:
            # that yields the raw urllib3 stream, skipping botocore's length and checksum
            # checks and its translation of socket errors.
            body = answer["Body"]
            try:
                data = body.read()
            finally:
                body.close()
            return StoredObject(data, answer.get("ContentType") or "application/octet-stream")

        return await self._run(f"get_object {key!r}", get)

    async def head(self, path: str) -> ObjectHead | None:
        key = self.key(path)

        def head() -> ObjectHead | None:
            try:
                answer = self.client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
            return ObjectHead(
                answer.get("ContentType") or "application/octet-stream",
                answer["ContentLength"],
                answer["LastModified"].timestamp(),
            )

        return await self._run(f"head_object {key!r}", head)

    async def delete(self, path: str) -> None:
        # S3 answers 204 whether or not the object existed.
        await self._call("delete_object", Bucket=self.bucket, Key=self.key(path))

    def url(self, path: str, base: str) -> str:
        """``s3_public_url``/key, else a presigned GET URL; ``base`` does not apply to S3.

        Presigning is local work (an HMAC over the request), so it runs in the caller's thread.
        """
        key = self.key(path)
        if self.settings.s3_public_url:
            return f"{self.settings.s3_public_url.rstrip('/')}/{quote(key, safe='/~')}"
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.settings.s3_presign_expiry,
        )
        return url

    async def ping(self) -> None:
        await self._call("head_bucket", Bucket=self.bucket)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def client(self) -> BaseClient:
        if self._client is None:
            raise RuntimeError("S3Storage is not open")
        return self._client

    async def _call(self, method: str, **params: Any) -> Any:
        """``client.<method>(**params)`` in the pool; errors translated."""

        def call() -> Any:
            return getattr(self.client, method)(**params)

        key = params.get("Key")
        return await self._run(f"{method} {key!r}" if key else method, call)

    async def _run(self, what: str, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("S3Storage is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            said = error.get("Message") or ""  # the server's own words: logged, not sent
            raise Unavailable(f"s3: {what}: {status} {_code(exc)}", detail=said) from exc
        except BotoCoreError as exc:
            raise Unavailable(f"s3: {what}: {type(exc).__name__}", detail=str(exc)) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _results_rule(rule_id: str, prefix: str, days: int) -> Rule:
    return {
        "ID": rule_id,
        "Filter": {"Prefix": prefix},
        "Status": "Enabled",
        "Expiration": {"Days": days},
    }


def _rule_prefix(rule: Rule) -> str:
    """The key prefix a rule applies to (its tag or size conditions aside)."""
    filter_ = rule.get("Filter") or {}
    prefix = filter_.get("Prefix", (filter_.get("And") or {}).get("Prefix", rule.get("Prefix")))
    return str(prefix or "")


def _same_rules(ours: list[Rule], wanted: list[Rule], prefix: str, days: int) -> bool:
    """The bucket already has the rule we want (or, without a lifetime, none of ours)."""
    if not wanted or len(ours) != 1:
        return len(ours) == len(wanted)
    rule = ours[0]
    return (
        rule.get("Status") == "Enabled"
        and (rule.get("Expiration") or {}).get("Days") == days
        and set(rule.get("Filter") or {}) == {"Prefix"}
        and _rule_prefix(rule) == prefix
    )


def _expires_sooner(rule: Rule, prefix: str, days: int) -> bool:
    """Another rule that may delete results before the results lifetime has passed."""
    if rule.get("Status") != "Enabled":
        return False
    expiration = rule.get("Expiration") or {}
    if "Days" not in expiration and "Date" not in expiration:
        return False
    theirs = _rule_prefix(rule)
    if not (prefix.startswith(theirs) or theirs.startswith(prefix)):
        return False
    return not days or "Date" in expiration or int(expiration["Days"]) < days
