"""A file-drop OA for development and the demo: request statuses and to-dos as JSON files.

Each message is written to ``<YINFIN_FILEOA_DIR>/<name>.json`` (``name`` from the
idempotency key as the file connector makes it, so a re-delivery replaces the same file
atomically). The answer's ``id`` is that name, kept as the message's external id.

``YINFIN_FILEOA_REFUSE_EVERY`` (default 0: never) makes it fail now and then, as an OA
gateway does: the first delivery of about one message in N is refused with a permanent
error and becomes a dead letter. Which ones is chosen by the SHA-256 of what the
message says (kind, request, status, people; not the key, which can carry a random
part), so a demo loaded on the same day refuses the same messages. The refusal is remembered under ``<dir>/refused/``, so a replay of the
dead letter is delivered. The demo uses it to leave dead letters to replay.

It takes no inbound events (there is no OA to send them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .base import InboundResult, PermanentError, RetryableError, SeenFn, StatusMessage
from .file import file_name

NAME = "fileoa"
SETTINGS = ("YINFIN_FILEOA_DIR",)


class FileOAConnector:
    name = NAME

    def __init__(self, *, directory: str | Path, refuse_every: int = 0) -> None:
        if refuse_every < 0:
            raise ValueError("YINFIN_FILEOA_REFUSE_EVERY must be 0 or more")
        self.dir = Path(directory)
        self.refuse_every = refuse_every

    @classmethod
    def from_settings(cls, s: Mapping[str, str]) -> FileOAConnector:
        raw = (s.get("YINFIN_FILEOA_REFUSE_EVERY") or "0").strip()
        if not raw.isdigit():
            raise ValueError(f"YINFIN_FILEOA_REFUSE_EVERY: {raw!r} is not a whole number")
        return cls(directory=s["YINFIN_FILEOA_DIR"], refuse_every=int(raw))

    def verify_and_parse(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, *,
                         now: datetime, seen: SeenFn) -> InboundResult:
        raise PermanentError("the file-drop OA sends no events", connector=NAME, status=404)

    def refuses(self, message: StatusMessage) -> bool:
        """Whether the first delivery of this message is refused (see the module's note)."""
        if not self.refuse_every:
            return False
        said = "|".join((message.kind, message.request_id, message.status, *message.user_ids))
        return int(hashlib.sha256(said.encode()).hexdigest()[:8], 16) % self.refuse_every == 0

    def push_status(self, message: StatusMessage, idempotency_key: str) -> dict[str, Any]:
        name = file_name(idempotency_key)
        try:
            if self.refuses(message):
                marker = self.dir / "refused" / name
                if not marker.exists():
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.write_text(idempotency_key, encoding="utf-8")
                    raise PermanentError("the OA gateway refused the message (simulated: "
                                         "YINFIN_FILEOA_REFUSE_EVERY); replay it", connector=NAME)
            self.dir.mkdir(parents=True, exist_ok=True)
            body = json.dumps({"key": idempotency_key, **dataclasses.asdict(message)},
                              default=str, ensure_ascii=False, indent=1)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
            os.replace(tmp, self.dir / f"{name}.json")
        except OSError as err:
            raise RetryableError(f"cannot write {self.dir}: {err}", connector=NAME) from err
        return {"id": name}
