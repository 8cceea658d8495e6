"""Configuration from the environment, with defaults that are safe on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
    # reports, the budget tree, line reads, exports and simulation read here (a replica); unset: the primary
    database_read_url: str | None = None
    redis_url: str | None = None  # unset: background work runs in-process
    secret_key: str | None = None
    env: str = "development"  # development | production
    workflows_dir: Path = PROJECT_ROOT / "workflows"
    default_control_mode: str = "hard"
    rule_change_approval: str = "required"  # required | off: control rule changes need a second person
    # required | off: budget adjustments, transfers and imports need a second person
    budget_journal_approval: str = "required"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=env.get("YINFIN_DATABASE_URL") or _default_database_url(),
            database_read_url=env.get("YINFIN_DATABASE_READ_URL") or None,
            redis_url=env.get("YINFIN_REDIS_URL") or None,
            secret_key=env.get("YINFIN_SECRET_KEY") or None,
            env=env.get("YINFIN_ENV", "development"),
            workflows_dir=Path(env.get("YINFIN_WORKFLOWS_DIR") or PROJECT_ROOT / "workflows"),
            default_control_mode=env.get("YINFIN_DEFAULT_CONTROL_MODE", "hard"),
            rule_change_approval=env.get("YINFIN_RULE_CHANGE_APPROVAL") or "required",
            budget_journal_approval=env.get("YINFIN_BUDGET_JOURNAL_APPROVAL") or "required",
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
        if self.budget_journal_approval not in ("required", "off"):
            raise ConfigError("YINFIN_BUDGET_JOURNAL_APPROVAL must be required or off")
