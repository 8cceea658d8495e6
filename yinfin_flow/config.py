"""Configuration from the environment, with defaults that are safe on a laptop."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from yinfin_flow.domain.limits import DEFAULT_LIMITS, Limits

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
DEFAULT_SCHEMA = "yinfin"


def shipped(name: str) -> Path:
    """A directory the project ships beside its code (``migrations``, ``workflows``).

    Installed from a wheel it is inside the package (``yinfin_flow/<name>``, mapped there
    by the build); run from a checkout (or an editable install) it is the repository's
    top-level ``<name>/``.
    """
    return PACKAGE_DIR / name if installed() else PROJECT_ROOT / name


def database_schema(environ: Mapping[str, str] | None = None) -> str:
    """``YINFIN_DATABASE_SCHEMA`` (default ``yinfin``): the PostgreSQL schema yinfin-flow's
    tables live in. Refuses a name that is not a plain lower-case identifier."""
    env = os.environ if environ is None else environ
    name = env.get("YINFIN_DATABASE_SCHEMA") or DEFAULT_SCHEMA
    if not SCHEMA_NAME.fullmatch(name) or name.startswith("pg_"):
        raise ConfigError(
            f"YINFIN_DATABASE_SCHEMA {name!r} is not a schema name yinfin-flow can use: "
            "lower-case letters, digits and _, starting with a letter or _, not pg_…, "
            "at most 63 characters")
    return name


class ConfigError(RuntimeError):
    pass


def installed() -> bool:
    """Running from an installed wheel (the shipped directories are inside the package),
    not from a checkout."""
    return (PACKAGE_DIR / "migrations").is_dir()


def _instance_dir(env: Mapping[str, str] | None = None) -> Path:
    """``YINFIN_INSTANCE_DIR``: where the default SQLite database and attachments go."""
    # A checkout keeps its data in the repository's instance/; an installed package
    # never writes into site-packages: instance/ in the folder it is run from.
    base = Path.cwd() if installed() else PROJECT_ROOT
    return Path((os.environ if env is None else env).get("YINFIN_INSTANCE_DIR") or base / "instance")


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

    database_url: str = field(default_factory=_default_database_url)  # SQLAlchemy URL; production: postgresql+psycopg://…
    # reports, the budget tree, line reads, exports and simulation read here (a replica); unset: the primary
    database_read_url: str | None = None
    redis_url: str | None = None  # unset: background work runs in-process
    secret_key: str | None = None  # signs the console's cookie; required when YINFIN_ENV=production
    env: str = "development"  # development | production
    database_schema: str = DEFAULT_SCHEMA  # PostgreSQL: the schema all of yinfin-flow's tables live in
    # workflow definitions and posting templates (postings/); `yinfin-flow workflows init DIR` copies the shipped ones
    workflows_dir: Path = field(default_factory=lambda: shipped("workflows"))
    default_control_mode: str = "hard"  # hard | soft | track | none: control of lines no rule covers
    rule_change_approval: str = "required"  # required | off: control rule changes need a second person
    # required | off: budget adjustments, transfers and imports need a second person
    budget_journal_approval: str = "required"
    attachments_dir: Path = field(default_factory=_default_attachments_dir)  # attachment files, by SHA-256
    attachment_max_bytes: int = 10 * 1024 * 1024  # the largest attachment; larger: 413 attachment_too_large
    limits: Limits = DEFAULT_LIMITS  # input limits at every door (YINFIN_MAX_*)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=env.get("YINFIN_DATABASE_URL") or _default_database_url(),
            database_read_url=env.get("YINFIN_DATABASE_READ_URL") or None,
            redis_url=env.get("YINFIN_REDIS_URL") or None,
            secret_key=env.get("YINFIN_SECRET_KEY") or None,
            env=env.get("YINFIN_ENV", "development"),
            database_schema=database_schema(env),
            workflows_dir=Path(env.get("YINFIN_WORKFLOWS_DIR") or shipped("workflows")),
            default_control_mode=env.get("YINFIN_DEFAULT_CONTROL_MODE", "hard"),
            rule_change_approval=env.get("YINFIN_RULE_CHANGE_APPROVAL") or "required",
            budget_journal_approval=env.get("YINFIN_BUDGET_JOURNAL_APPROVAL") or "required",
            attachments_dir=Path(env.get("YINFIN_ATTACHMENTS_DIR") or _instance_dir(env) / "attachments"),
            attachment_max_bytes=_int_setting(env, "YINFIN_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024),
            limits=limits_from_env(env),
        )
        settings.check()
        return settings

    @property
    def production(self) -> bool:
        return self.env == "production"

    def check(self) -> None:
        """Refuse configurations that are unsafe to run."""
        database_schema({"YINFIN_DATABASE_SCHEMA": self.database_schema})
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
        if self.attachment_max_bytes < 1:
            raise ConfigError("YINFIN_ATTACHMENT_MAX_BYTES must be at least 1")


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
