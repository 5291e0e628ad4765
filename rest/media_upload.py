"""Reading an upload: a multipart/form-data body with a `kind` field and one `file` field, read as
it streams in and cut off at the kind's size limit (MEDIA_MAX_BYTES_<KIND>). aiohttp's own body
limit does not apply to a streamed multipart body, so this is the one bound, and it answers 413
`too_large` in the REST error shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import msgspec
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from domain.media import KINDS, Kind
from hub.keys import SETTINGS
from rest.errors import ApiError

MAX_PARTS = 4
CHUNK = 64 * 1024
FORM_SLACK = 64 * 1024
"""Bytes of a multipart body beyond the file itself: boundaries, part headers, the kind field."""


class UploadForm(msgspec.Struct, rename="camel"):
    """POST /api/media: multipart/form-data with these two fields (documentation of the form; the
    body is read by rest/media_upload.py)."""

    media_type: ClassVar[str] = "multipart/form-data"

    file: Annotated[
        str,
        msgspec.Meta(
            description="the file; its type is judged by its content (JPEG, PNG, WebP; PDF but for"
            " avatars), not by its name or Content-Type",
            extra_json_schema={"contentMediaType": "application/octet-stream"},
        ),
    ]
    kind: Annotated[Kind, msgspec.Meta(description="what the file is for")]


@dataclass(frozen=True)
class Upload:
    kind: str
    data: bytes


def _bad(message: str) -> ApiError:
    return ApiError("bad_request", message, details={"fields": {"body": message}})


def _too_large(kind: str | None, limit: int) -> ApiError:
    what = f"A {kind}" if kind else "A file"
    return ApiError(
        "too_large", f"{what} may be at most {limit} bytes; send a smaller file.", details={"maxBytes": limit}
    )


async def _read(part: BodyPartReader, limit: int) -> bytes | None:
    """The part's bytes, None when there are more than `limit`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: web.Request) -> Upload:
    """The form's kind and file; 400 for a body that is not such a form, 413 over the kind's limit."""
    limits = request.app[SETTINGS].media_max_bytes
    ceiling = max(limits.values())
    if request.content_type != "multipart/form-data":
        raise _bad("Send multipart/form-data with the fields kind and file.")
    if request.content_length is not None and request.content_length > ceiling + FORM_SLACK:
        raise _too_large(None, ceiling)
    kind: str | None = None
    data: bytes | None = None
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise _bad("A nested multipart body is not a file; send kind and file as plain fields.")
            if part.name == "kind":
                raw = await _read(part, 64)
                kind = (raw or b"").decode("utf-8", "replace").strip()
                if kind not in KINDS:
                    raise ApiError(
                        "bad_request",
                        f"kind must be one of {', '.join(sorted(KINDS))}.",
                        details={"fields": {"kind": "is not a known kind"}},
                    )
            elif part.name == "file":
                if data is not None:
                    raise _bad("Send one file per request.")
                limit = limits[kind] if kind is not None else ceiling
                data = await _read(part, limit)
                if data is None:
                    raise _too_large(kind, limit)
            else:
                raise _bad(f"Unknown form field {part.name!r}: send only kind and file.")
        else:
            raise _bad("Too many form fields: send only kind and file.")
    except (HttpProcessingError, ValueError, AssertionError, LookupError, RuntimeError, UnicodeError) as exc:
        # aiohttp's multipart reader says a body is malformed with these (a missing boundary, a
        # part without headers, a cut-off body).
        raise _bad(f"The multipart body is malformed ({type(exc).__name__}).") from None
    missing = {name: "is required" for name, value in (("kind", kind), ("file", data)) if value is None}
    if missing:
        raise ApiError("bad_request", f"Fix these fields: {', '.join(missing)}.", details={"fields": missing})
    assert kind is not None and data is not None
    if len(data) > limits[kind]:  # the file came before its kind
        raise _too_large(kind, limits[kind])
    if not data:
        raise ApiError("bad_request", "The file is empty.", details={"fields": {"file": "is empty"}})
    return Upload(kind, data)
