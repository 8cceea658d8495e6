"""Settings kept in the instance folder: ``<instance>/yinfin.env``.

Lines ``YINFIN_NAME=value``; blank lines and lines starting with ``#`` are ignored.
The ``yinfin-flow`` command, the app factory and the Celery worker read it when they
start; a variable set in the real environment always wins over the file. ``yinfin-flow
demo load`` writes one (the demo's connectors) when there is none and no connector is
configured, so ``make run`` and every later command on the same instance see the same
settings without anything exported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from yinfin_flow.config import ConfigError, _instance_dir

FILE = "yinfin.env"


def path(env: Mapping[str, str] | None = None) -> Path:
    return _instance_dir(env) / FILE


def read(file: Path) -> dict[str, str]:
    """The file's settings (only ``YINFIN_*`` names); a bad line is a
    :class:`~yinfin_flow.config.ConfigError` naming the file and line."""
    values: dict[str, str] = {}
    for n, raw in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        name = name.strip()
        if not eq or not name.startswith("YINFIN_"):
            raise ConfigError(f"{file}:{n}: expected YINFIN_NAME=value")
        values[name] = value.strip()
    return values


def apply(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put the instance file's settings into ``environ`` (default ``os.environ``) where
    it has none of its own; returns those applied."""
    env = os.environ if environ is None else environ
    file = path(env)
    if not file.is_file():
        return {}
    applied = {k: v for k, v in read(file).items() if k not in env}
    env.update(applied)
    return applied


def write(values: Mapping[str, str], comment: str, environ: Mapping[str, str] | None = None) -> Path:
    """Create the instance file with ``values`` (never overwrites one)."""
    file = path(environ)
    file.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"# {c}\n" for c in comment.splitlines()) + "".join(f"{k}={v}\n" for k, v in values.items())
    with file.open("x", encoding="utf-8") as fh:
        fh.write(text)
    return file
