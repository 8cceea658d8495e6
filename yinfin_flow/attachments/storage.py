"""Where attachment bytes live: a small content-addressed store.

The interface is three calls, :class:`Storage`: ``put(data) -> sha256 hex``,
``get(sha256) -> bytes`` and ``exists(sha256)`` (a store may also say the largest file
it takes, ``max_bytes``; the service honours it). Content addressing makes ``put``
idempotent (the same bytes are stored once, whoever attaches them again) and lets an
object store with immutable keys (S3, OSS, MinIO) implement it as it is: key = hash.

The default, :class:`DirectoryStorage`, is a directory (``YINFIN_ATTACHMENTS_DIR``,
else ``attachments/`` in the instance folder) with one file per hash under two levels
of fan-out (``ab/cd/abcd…``). Files are written to a temporary name and renamed into
place, so a reader never sees half a file, and ``get`` checks the hash of what it
read, so a damaged file is an error rather than a wrong download.

Bytes are stored before the database row that points at them commits: a row never
points at missing content; a failed transaction can leave an unreferenced file
(harmless; the same bytes attached later reuse it).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from yinfin_flow.config import Settings
from yinfin_flow.domain.attachments import DEFAULT_MAX_BYTES
from yinfin_flow.domain.errors import DomainError

_HEX = re.compile(r"^[0-9a-f]{64}$")


class ContentMissing(DomainError):
    """The row exists but its bytes are gone or damaged in the store (an operator problem)."""

    code = "attachment_content_missing"
    http_status = 410


@runtime_checkable
class Storage(Protocol):
    """A content-addressed byte store."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (once, however often it is put) and return its SHA-256 in hex."""
        ...

    def get(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``; :class:`ContentMissing` if absent or damaged."""
        ...

    def exists(self, sha256: str) -> bool:
        ...


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DirectoryStorage:
    """The default store: files in a directory, named by their SHA-256.

    ``max_bytes``: the largest file the service accepts for this store (the configured
    ``YINFIN_ATTACHMENT_MAX_BYTES`` when made by :func:`storage_from`).
    """

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _path(self, sha256: str) -> Path:
        if not _HEX.match(sha256):
            raise ContentMissing(f"no stored content {sha256[:80]!r}", sha256=sha256[:80])
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        digest = sha256_of(data)
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic; a racing put of the same bytes writes the same file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ContentMissing(f"the content {sha256} is missing from the store", sha256=sha256) from None
        if sha256_of(data) != sha256:
            raise ContentMissing(f"the content {sha256} is damaged in the store", sha256=sha256)
        return data

    def exists(self, sha256: str) -> bool:
        try:
            return self._path(sha256).is_file()
        except ContentMissing:
            return False


def storage_from(app_or_settings: Any) -> Storage:
    """The configured store for a Flask app (with ``YinFinFlow`` initialised) or a
    :class:`~yinfin_flow.config.Settings`."""
    settings = app_or_settings
    if not isinstance(settings, Settings):
        from yinfin_flow.extension import state

        settings = state(app_or_settings).settings
    return DirectoryStorage(settings.attachments_dir, max_bytes=settings.attachment_max_bytes)
