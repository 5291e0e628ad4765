"""The S3-compatible media store: MEDIA_STORAGE_URL=s3://bucket?endpoint=URL&region=R&prefix=P
(endpoint: any S3-compatible service such as MinIO; without it, AWS itself). Credentials come the
usual AWS way (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role). The bucket
must exist. Its signed URLs are S3 presigned GET URLs, so clients fetch bytes from the store.

boto3, called in a thread, rather than aiobotocore: aiobotocore pins narrow ranges of botocore and
aiohttp, and gigwire's aiohttp is pinned for its own reasons (pyproject.toml); media calls are a few
per upload or download, so a thread per call costs nothing that matters. boto3's client is
thread-safe."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hub.storage import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3Storage:
    """Objects `<prefix><key>` in `bucket`."""

    direct = True

    def __init__(self, bucket: str, *, endpoint: str | None, region: str | None, prefix: str = "") -> None:
        self.bucket = bucket
        self.prefix = prefix
        config = Config(
            s3={"addressing_style": "path"} if endpoint else {},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
            signature_version="s3v4",
        )
        self.client: S3Client = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)

    @classmethod
    def from_url(cls, url: str) -> S3Storage:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return cls(
            parts.netloc,
            endpoint=query.get("endpoint"),
            region=query.get("region"),
            prefix=query.get("prefix", ""),
        )

    async def _call(self, what: str, fn: Any, /, **kw: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, **kw)
        except ClientError as exc:
            raise StorageError(f"{what}: {exc.response.get('Error', {}).get('Code', 'error')}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"{what}: {exc}") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call(
            f"putting {key}",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.prefix + key,
            Body=data,
            ContentType=content_type,
        )

    async def get(self, key: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    return None
                raise
            body: bytes = answer["Body"].read()
            return body

        result: bytes | None = await self._call(f"getting {key}", read)
        return result

    async def delete(self, key: str) -> None:
        await self._call(
            f"deleting {key}", self.client.delete_object, Bucket=self.bucket, Key=self.prefix + key
        )

    async def signed_url(self, key: str, expires_at: int, *, base_url: str, content_type: str) -> str:
        import time

        seconds = max(1, min(int(expires_at - time.time()), 7 * 86400))  # S3's longest is 7 days
        params = {"Bucket": self.bucket, "Key": self.prefix + key, "ResponseContentType": content_type}
        url: str = await self._call(
            f"signing {key}",
            self.client.generate_presigned_url,
            ClientMethod="get_object",
            Params=params,
            ExpiresIn=seconds,
        )
        return url

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)
