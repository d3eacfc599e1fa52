"""S3 storage through aiobotocore: any S3-compatible endpoint (AWS, MinIO, SeaweedFS, OSS).

Objects live under `s3://bucket/prefix/<key>`. A PUT is atomic, so a reader sees a whole
object or none. Workers never download a source whole: they get a presigned GET URL and
read it with ranged requests (`livetx.media.remote`). Credentials come from the standard
AWS chain (environment, shared config, instance role) and are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiobotocore.session
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from livetx.errors import ConfigError, LivetxError, ParameterError, StorageUnavailable
from livetx.layout import CONTENT_TYPES
from livetx.settings import S3Settings
from livetx.storage.base import ObjectInfo, check_key, check_record_folder, is_hidden, split_prefix, split_uri
from livetx.storage.breaker import CircuitBreaker

MISSING = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending in "/"

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"not an S3 URI (s3://bucket/prefix): {uri!r}")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, prefix + "/" if prefix else "")

    def child(self, name: str) -> S3Location:
        return S3Location(self.bucket, f"{self.prefix}{name.strip('/')}/")


@asynccontextmanager
async def s3_client(options: S3Settings) -> AsyncIterator[Any]:
    """One aiobotocore client for the app's lifetime (opened in cleanup_ctx)."""
    config = AioConfig(
        s3={"addressing_style": options.addressing_style},
        signature_version="s3v4",
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        max_pool_connections=64,
    )
    session = aiobotocore.session.get_session()
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(
            session.create_client("s3", endpoint_url=options.endpoint_url or None, region_name=options.region or None, config=config)
        )
        yield client


def _missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code")) in MISSING or status == 404


class S3Storage:
    def __init__(self, client: Any, location: S3Location, options: S3Settings, breaker: CircuitBreaker | None = None) -> None:
        self.client = client
        self.location = location
        self.options = options
        self.part_bytes = options.part_bytes  # (`write_file`)
        self.breaker = breaker or CircuitBreaker(f"s3 {location.bucket}")

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.location.bucket}/{self.location.prefix})"

    def _key(self, key: str) -> str:
        return self.location.prefix + check_key(key)

    @asynccontextmanager
    async def _call(self, what: str) -> AsyncIterator[None]:
        """One S3 operation through the breaker. A "not found" ClientError is passed on to the
        caller (the store answered); other failures become StorageUnavailable."""
        self.breaker.before()
        try:
            yield
        except ClientError as exc:
            if _missing(exc):
                self.breaker.success()
                raise
            self.breaker.failure()
            raise StorageUnavailable(f"S3 {what} failed: {exc.response.get('Error', {}).get('Code', '?')}") from None
        except (BotoCoreError, OSError) as exc:
            self.breaker.failure()
            raise StorageUnavailable(f"S3 unreachable: {type(exc).__name__}") from None
        except BaseException:
            self.breaker.abandon()  # cancelled, or not the store's fault: no verdict
            raise
        else:
            self.breaker.success()

    async def stat(self, key: str) -> ObjectInfo | None:
        try:
            async with self._call("HEAD"):
                head = await self.client.head_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError:  # not found
            return None
        raw = str(head.get("ETag", ""))
        etag = raw.strip('"')
        version = head.get("VersionId")
        if version and version != "null":
            etag = f"{etag}-{version}"
        return ObjectInfo(key=key, size=int(head["ContentLength"]), etag=etag, pin=raw)  # pin: sent as If-Match

    async def read(self, key: str) -> bytes:
        return await self.read_range(key, None, None)

    async def read_range(self, key: str, start: int | None, stop: int | None) -> bytes:
        """Bytes [start, stop) of the object (all of it when both are None)."""
        params: dict[str, Any] = {"Bucket": self.location.bucket, "Key": self._key(key)}
        if start is not None or stop is not None:
            params["Range"] = f"bytes={start or 0}-{'' if stop is None else stop - 1}"
        try:
            async with self._call("GET"):
                response = await self.client.get_object(**params)
                async with response["Body"] as body:
                    return bytes(await body.read())
        except ClientError:
            raise FileNotFoundError(key) from None

    async def write(self, key: str, data: bytes) -> None:
        try:
            async with self._call("PUT"):
                await self.client.put_object(
                    Bucket=self.location.bucket,
                    Key=self._key(key),
                    Body=data,
                    ContentType=CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream"),
                )
        except ClientError as exc:  # a PUT's 404: the bucket is gone
            raise StorageUnavailable(f"S3 PUT failed: {exc.response.get('Error', {}).get('Code', '?')}") from None

    async def write_file(self, key: str, path: Path) -> None:
        """One PUT up to `part_bytes`; beyond, a multipart upload, one part in memory at a time,
        whose object appears only when the upload completes (aborted on any failure)."""
        size = (await asyncio.to_thread(path.stat)).st_size
        if size <= self.part_bytes:
            await self.write(key, await asyncio.to_thread(path.read_bytes))
            return
        target = {"Bucket": self.location.bucket, "Key": self._key(key)}
        content_type = CONTENT_TYPES.get(Path(key).suffix, "application/octet-stream")
        try:
            async with self._call("PUT"):
                upload = (await self.client.create_multipart_upload(**target, ContentType=content_type))["UploadId"]
            try:
                parts: list[dict[str, Any]] = []
                with path.open("rb") as fh:
                    while chunk := await asyncio.to_thread(fh.read, self.part_bytes):
                        number = len(parts) + 1
                        async with self._call("PUT"):
                            part = await self.client.upload_part(**target, UploadId=upload, PartNumber=number, Body=chunk)
                        parts.append({"ETag": part["ETag"], "PartNumber": number})
                async with self._call("PUT"):
                    await self.client.complete_multipart_upload(**target, UploadId=upload, MultipartUpload={"Parts": parts})
            except BaseException:
                # the parts would be kept (and billed) until aborted; the object never appeared
                with contextlib.suppress(ClientError, BotoCoreError, StorageUnavailable):
                    await asyncio.shield(self.client.abort_multipart_upload(**target, UploadId=upload))
                raise
        except ClientError as exc:
            raise StorageUnavailable(f"S3 multipart upload failed: {exc.response.get('Error', {}).get('Code', '?')}") from None

    async def delete(self, key: str) -> None:
        try:
            async with self._call("DELETE"):
                await self.client.delete_object(Bucket=self.location.bucket, Key=self._key(key))
        except ClientError:
            pass  # already gone

    async def list_prefix(self, prefix: str, limit: int) -> list[ObjectInfo]:
        split_prefix(prefix)
        params = {"Bucket": self.location.bucket, "Prefix": self.location.prefix + prefix, "Delimiter": "/", "MaxKeys": limit}
        try:
            async with self._call("LIST"):
                page = await self.client.list_objects_v2(**params)
        except ClientError as exc:  # the bucket is gone
            raise StorageUnavailable(f"S3 LIST failed: {exc.response.get('Error', {}).get('Code', '?')}") from None
        found = []
        for item in page.get("Contents", []):  # sub-folders come as CommonPrefixes: not listed
            key = item["Key"][len(self.location.prefix) :]
            if key and not is_hidden(key):
                found.append(ObjectInfo(key=key, size=int(item["Size"]), etag=str(item.get("ETag", "")).strip('"')))
        return found[:limit]

    async def list_records(self, folder: str, limit: int) -> list[ObjectInfo]:
        check_record_folder(folder)
        params = {"Bucket": self.location.bucket, "Prefix": self.location.prefix + folder, "Delimiter": "/", "MaxKeys": limit}
        try:
            async with self._call("LIST"):
                page = await self.client.list_objects_v2(**params)
        except ClientError as exc:
            raise StorageUnavailable(f"S3 LIST failed: {exc.response.get('Error', {}).get('Code', '?')}") from None
        found = []
        for item in page.get("Contents", []):
            key = item["Key"][len(self.location.prefix) :]
            if key.startswith(folder) and not key[len(folder) :].startswith("."):
                found.append(ObjectInfo(key=key, size=int(item["Size"]), etag=str(item.get("ETag", "")).strip('"')))
        return found[:limit]

    async def list(self, limit: int) -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        try:
            async with self._call("LIST"):
                paginator = self.client.get_paginator("list_objects_v2")
                async for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.prefix):
                    for item in page.get("Contents", []):
                        key = item["Key"][len(self.location.prefix) :]
                        if not key or is_hidden(key):
                            continue
                        found.append(ObjectInfo(key=key, size=int(item["Size"]), etag=str(item.get("ETag", "")).strip('"')))
                        if len(found) >= limit:
                            return found
        except ClientError as exc:
            raise StorageUnavailable(f"S3 LIST failed: {exc.response.get('Error', {}).get('Code', '?')}") from None
        return found

    def local_path(self, key: str) -> Path | None:
        return None

    def key_for_uri(self, uri: str, field: str) -> str:
        bucket, key = split_uri(uri, field)
        where = f"s3://{self.location.bucket}/{self.location.prefix}"
        if bucket != self.location.bucket or not key.startswith(self.location.prefix):
            raise ParameterError(field, f"an object URI under {where}")
        try:
            return check_key(key[len(self.location.prefix) :])
        except LivetxError as exc:
            raise ParameterError(field, f"an object URI with a valid key ({exc.message})") from None

    async def media_url(self, key: str) -> str:
        """A presigned GET URL a worker reads with ranged requests. It carries a signature:
        never log it."""
        return str(
            await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.location.bucket, "Key": self._key(key)}, ExpiresIn=self.options.presign_ttl
            )
        )
