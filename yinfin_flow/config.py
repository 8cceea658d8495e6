"""Configuration from the environment, with defaults that are safe on a laptop."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    pass


def _default_database_url() -> str:
    instance = Path(os.environ.get("YINFIN_INSTANCE_DIR", PROJECT_ROOT / "instance"))
    return f"sqlite:///{instance / 'yinfin.sqlite'}"


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Read once with :func:`Settings.from_env`."""

    database_url: str = field(default_factory=_default_database_url)
    redis_url: str | None = None  # unset: background work runs in-process
    secret_key: str | None = None
    env: str = "development"  # development | production
    workflows_dir: Path = PROJECT_ROOT / "workflows"
    default_control_mode: str = "hard"
    rule_change_approval: str = "required"  # required | off: control rule changes need a second person
    limits: Limits = DEFAULT_LIMITS  # input limits at every door (YINFIN_MAX_*)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=env.get("YINFIN_DATABASE_URL") or _default_database_url(),
            redis_url=env.get("YINFIN_REDIS_URL") or None,
            secret_key=env.get("YINFIN_SECRET_KEY") or None,
            env=env.get("YINFIN_ENV", "development"),
            workflows_dir=Path(env.get("YINFIN_WORKFLOWS_DIR") or PROJECT_ROOT / "workflows"),
            default_control_mode=env.get("YINFIN_DEFAULT_CONTROL_MODE", "hard"),
            rule_change_approval=env.get("YINFIN_RULE_CHANGE_APPROVAL") or "required",
            limits=limits_from_env(env),
        )
        settings.check()
        return settings

    @property
    def production(self) -> bool:
        return self.env == "production"

    def check(self) -> None:
        """Refuse configurations that are unsafe to run."""
        if self.production and not self.secret_key:
            raise ConfigError("YINFIN_SECRET_KEY must be set when YINFIN_ENV=production")
        if self.production and self.database_url.startswith("sqlite"):
            # Allowed, but a single file database is not shared between instances.
            pass
        if self.default_control_mode not in ("hard", "soft", "track", "none"):
            raise ConfigError(
                "YINFIN_DEFAULT_CONTROL_MODE must be one of hard, soft, track, none"
            )
        if self.rule_change_approval not in ("required", "off"):
            raise ConfigError("YINFIN_RULE_CHANGE_APPROVAL must be required or off")


#: Environment variable of each :class:`Limits` field, with the smallest value that
#: still lets ordinary work through (a lower one would refuse real requests).
LIMIT_VARIABLES: dict[str, tuple[str, int]] = {
    "max_body_bytes": ("YINFIN_MAX_BODY_BYTES", 16_384),
    "max_json_depth": ("YINFIN_MAX_JSON_DEPTH", 8),
    "max_string_length": ("YINFIN_MAX_STRING_LENGTH", 2_000),
    "max_request_lines": ("YINFIN_MAX_REQUEST_LINES", 1),
    "max_file_bytes": ("YINFIN_MAX_FILE_BYTES", 16_384),
}


def limits_from_env(env: Mapping[str, str]) -> Limits:
    """:class:`Limits` from ``YINFIN_MAX_*`` (unset: the defaults). Raises
    :class:`ConfigError` for a value that is not a whole number or is below its floor."""
    values: dict[str, int] = {}
    for name, (var, floor) in LIMIT_VARIABLES.items():
        raw = env.get(var)
        if raw in (None, ""):
            continue
        text = str(raw).strip()
        if not text.isascii() or not text.isdigit():
            raise ConfigError(f"{var} must be a whole number, not {raw!r}")
        if int(text) < floor:
            raise ConfigError(f"{var} must be at least {floor}")
        values[name] = int(text)
    return Limits(**values) if values else DEFAULT_LIMITS
