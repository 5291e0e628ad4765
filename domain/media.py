"""What an uploaded file may be, and what gigwire keeps of it.

- The content type is sniffed from the bytes (magic numbers); the client's name and Content-Type
  are ignored. JPEG, PNG and WebP images are accepted for every kind; PDF for every kind but
  avatars. Anything else is refused (`unprocessable`, reason `unsupported_type`).
- Images are decoded with Pillow and re-encoded in their own format without any metadata (EXIF and
  its GPS position, XMP, ICC profiles, comments, text chunks), turned upright first by their EXIF
  orientation. A picture whose header declares more than MEDIA_MAX_PIXELS pixels is refused before
  it is decoded (a decompression bomb: a few kilobytes that would decode to gigabytes); one Pillow
  cannot decode is refused (`unreadable`). Animated images keep their first frame.
- PDFs are kept byte for byte (re-writing a PDF safely needs a PDF library and changes what the
  user signed or scanned); they must start with `%PDF-` and carry `%%EOF` near their end. gigwire
  serves them as downloads (`Content-Disposition: attachment`), never inline.

`process` is CPU work: callers run it in a thread."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Final, Literal, get_args

from PIL import Image, ImageOps, UnidentifiedImageError

from domain.errors import DomainError

Kind = Literal["avatar", "id_document", "gig_attachment", "chat_attachment"]
KINDS: Final = frozenset(get_args(Kind))
PUBLIC_KINDS: Final = frozenset({"avatar", "gig_attachment"})
"""Kinds anyone may read (profile pictures, files of public gigs); the others need a signed link
given only to those allowed (chat attachments: the order's parties; ID documents: owner, admins)."""

IMAGES: Final = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
PDF: Final = "application/pdf"
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "avatar": frozenset(IMAGES),
    "id_document": frozenset({*IMAGES, PDF}),
    "gig_attachment": frozenset({*IMAGES, PDF}),
    "chat_attachment": frozenset({*IMAGES, PDF}),
}
EXTENSIONS: Final = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", PDF: "pdf"}


def sniff(data: bytes) -> str | None:
    """The content type the bytes are (by their magic numbers), among the kinds gigwire keeps; None
    for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return PDF
    return None


@dataclass(frozen=True)
class Processed:
    """What is stored: the bytes, their sniffed type, and an image's size in pixels."""

    data: bytes
    content_type: str
    width: int | None
    height: int | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _refuse(reason: str, message: str, **details: object) -> DomainError:
    return DomainError("unprocessable", message, {"reason": reason, **details})


def process(kind: str, data: bytes, max_pixels: int) -> Processed:
    """The stored form of an upload of `kind`; DomainError unprocessable (details.reason
    unsupported_type, too_many_pixels or unreadable) when it cannot be kept."""
    content_type = sniff(data)
    allowed = sorted(ALLOWED[kind])
    if content_type is None or content_type not in ALLOWED[kind]:
        what = content_type or "not a file type gigwire keeps"
        raise _refuse(
            "unsupported_type",
            f"A {kind} must be one of {', '.join(allowed)} (this file is {what}, judged by its content).",
            allowed=allowed,
        )
    if content_type == PDF:
        if b"%%EOF" not in data[-1024:]:
            raise _refuse("unreadable", "This PDF is cut short (no %%EOF at its end); upload it again.")
        return Processed(data, PDF, None, None)
    return _image(data, content_type, max_pixels)


def _image(data: bytes, content_type: str, max_pixels: int) -> Processed:
    fmt = IMAGES[content_type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as image:
                width, height = image.size  # from the header: nothing decoded yet
                if width * height > max_pixels:
                    raise _refuse(
                        "too_many_pixels",
                        f"The image is {width}x{height} pixels; at most {max_pixels} pixels in all.",
                        maxPixels=max_pixels,
                    )
                image.load()
                upright = ImageOps.exif_transpose(image)
                return _encode(upright, fmt, content_type)
    except DomainError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse("too_many_pixels", "The image has too many pixels.", maxPixels=max_pixels) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError):
        # Pillow's plugins raise all of these for broken files.
        raise _refuse("unreadable", f"This {content_type} image cannot be read; upload it again.") from None


def _encode(image: Image.Image, fmt: str, content_type: str) -> Processed:
    """`image` in `fmt` with nothing but its pixels (a fresh image: no info, EXIF or profile)."""
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif fmt == "WEBP" and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.mode or image.mode == "P" else "RGB")
    elif fmt == "PNG" and image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA")
    clean = Image.new(image.mode, image.size)
    clean.paste(image)
    if image.mode == "P":
        palette = image.getpalette()
        if palette is not None:
            clean.putpalette(palette)
        if "transparency" in image.info:
            clean.info["transparency"] = image.info["transparency"]
    out = io.BytesIO()
    options: dict[str, object] = {"quality": 90} if fmt in ("JPEG", "WEBP") else {"optimize": True}
    if "transparency" in clean.info and fmt == "PNG":
        options["transparency"] = clean.info["transparency"]
    clean.save(out, format=fmt, **options)
    return Processed(out.getvalue(), content_type, clean.width, clean.height)
