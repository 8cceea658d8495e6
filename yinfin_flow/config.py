"""Configuration from the environment, with defaults that are safe on a laptop."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    pass


def _instance_dir(env: Mapping[str, str] | None = None) -> Path:
    return Path((os.environ if env is None else env).get("YINFIN_INSTANCE_DIR") or PROJECT_ROOT / "instance")


def _default_database_url() -> str:
    instance = _instance_dir()
    return f"sqlite:///{instance / 'yinfin.sqlite'}"


def _default_attachments_dir() -> Path:
    return Path(os.environ.get("YINFIN_ATTACHMENTS_DIR") or _instance_dir() / "attachments")


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None


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
    attachments_dir: Path = field(default_factory=_default_attachments_dir)
    attachment_max_bytes: int = 10 * 1024 * 1024

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
            attachments_dir=Path(env.get("YINFIN_ATTACHMENTS_DIR") or _instance_dir(env) / "attachments"),
            attachment_max_bytes=_int_setting(env, "YINFIN_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024),
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
        if self.attachment_max_bytes < 1:
            raise ConfigError("YINFIN_ATTACHMENT_MAX_BYTES must be at least 1")
