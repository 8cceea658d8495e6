"""``yinfin-flow workflows …``: list, check and draw the definitions (the shipped ones, or
``YINFIN_WORKFLOWS_DIR``); ``init`` copies the shipped ones out for a company to edit."""

from __future__ import annotations

import shutil
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from yinfin_flow.config import Settings, shipped
from yinfin_flow.db.models.engine import WorkflowDefinition
from yinfin_flow.domain.workflow_check import check as static_check
from yinfin_flow.domain.workflow_check import route_warnings
from yinfin_flow.engine import diagram
from yinfin_flow.engine.definitions import DefinitionError, compile_expression, load_file

from .common import unit_of_work
from .output import Col, emit, format_option


def _dir(directory: str | None) -> Path:
    return Path(directory) if directory else Settings.from_env().workflows_dir


def _files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


@click.group("workflows")
def command() -> None:
    """Workflow definitions (states, steps, budget actions)."""


def shipped_files() -> list[Path]:
    """The shipped definitions and posting templates, relative to the shipped directory."""
    root = shipped("workflows")
    return sorted(p.relative_to(root) for pattern in ("*.yaml", "postings/*.yaml")
                  for p in root.glob(pattern))


@command.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files DIRECTORY already has.")
def init(directory: Path, force: bool) -> None:
    """Copy the shipped definitions and posting templates into DIRECTORY to edit; then
    set YINFIN_WORKFLOWS_DIR=DIRECTORY. Files already there are kept unless --force."""
    root = shipped("workflows")
    files = shipped_files()
    existing = [f for f in files if (directory / f).exists()]
    if existing and not force:
        for f in existing:
            click.echo(f"exists: {directory / f}", err=True)
        raise click.ClickException(
            f"{len(existing)} file(s) already in {directory}; nothing copied (--force overwrites)")
    for f in files:
        (directory / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / f, directory / f)
    click.echo(f"copied {len(files)} files to {directory}; set YINFIN_WORKFLOWS_DIR={directory.resolve()}")


@command.command("list")
@click.option("--dir", "directory", default=None, help="Definitions directory (default: YINFIN_WORKFLOWS_DIR).")
@format_option
def list_(directory: str | None, fmt: str) -> None:
    """Name, version, title, states, steps and transitions of each definition (an invalid
    file is listed with its problem)."""
    rows: list[dict[str, object]] = []
    for f in _files(_dir(directory)):
        try:
            d = load_file(f)
        except DefinitionError as err:
            rows.append({"file": f.name, "name": None, "version": None, "title": None, "states": None,
                         "steps": None, "transitions": None, "problem": err.message})
            continue
        rows.append({"file": f.name, "name": d.name, "version": d.version, "title": d.title,
                     "states": len(d.states), "steps": sum(len(s.steps) for s in d.states.values()),
                     "transitions": len(d.transitions), "problem": None})
    emit(rows, [Col("file"), Col("name"), Col("version", right=True), Col("title"), Col("states", right=True),
                Col("steps", right=True), Col("transitions", right=True),
                Col("problem", shown=lambda v, r: f"INVALID: {v}" if v else "")], fmt)


@command.command("check")
@click.option("--dir", "directory", default=None, help="Definitions directory (default: YINFIN_WORKFLOWS_DIR).")
def check(directory: str | None) -> None:
    """Validate every definition and run the static check (reachability, ways out, no
    leaked budget). Exits 1 if anything is wrong, naming file, path and problem.

    Where the configured database is reachable, a file that changed while its version
    stayed one that requests already used is wrong too (submit would refuse it,
    ``definition_changed``). Warnings (a route no step may match) do not fail."""
    files = _files(_dir(directory))
    stored = _stored_hashes()
    bad = 0
    for f in files:
        notes: list[str] = []
        try:
            d = load_file(f)
            problems = [str(p) for p in static_check(d, compile_expression)]
            notes = [str(w) for w in route_warnings(d)]
            used = stored.get((d.name, d.version))
            if used is not None and used != d.content_hash:
                problems.append(f"{d.name}: version: the file changed but its version is still {d.version}, "
                                "which requests already use: raise the version")
        except DefinitionError as err:
            problems = [err.message]
        for n in notes:
            click.echo(f"WARN {f.name}: {n}", err=True)
        if problems:
            bad += 1
            for p in problems:
                click.echo(f"FAIL {f.name}: {p}", err=True)
        else:
            click.echo(f"ok   {f.name}: {d.name} v{d.version}")
    if not files:
        click.echo("no definitions found", err=True)
        raise SystemExit(1)
    if bad:
        raise SystemExit(1)


def _stored_hashes() -> dict[tuple[str, int], str]:
    """(name, version) -> content hash of the versions stored in the configured database;
    empty when there is none yet (a missing SQLite file is not created) or it is unreachable."""
    url = make_url(Settings.from_env().database_url)
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
        return {}
    try:
        with unit_of_work(readonly=True) as s:
            return {(n, v): h for n, v, h in s.execute(
                select(WorkflowDefinition.name, WorkflowDefinition.version, WorkflowDefinition.content_hash))}
    except SQLAlchemyError:
        return {}


@command.command("diagram")
@click.argument("name")
@click.option("--dir", "directory", default=None, help="Definitions directory.")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Write Mermaid to this file (and SVG beside it when graphviz is installed).")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid",
              show_default=True)
def draw(name: str, directory: str | None, out: str | None, fmt: str) -> None:
    """Write the state graph of workflow NAME (Mermaid text; SVG where graphviz is installed)."""
    f = _dir(directory) / f"{name}.yaml"
    if not f.exists():
        raise click.BadParameter(f"no workflow {name!r} in {f.parent}", param_hint="NAME")
    try:
        d = load_file(f)
    except DefinitionError as err:
        raise click.ClickException(err.message) from err
    if fmt == "svg":
        text = diagram.svg(d)
        if text is None:
            raise click.ClickException("graphviz is not installed (no `dot` on PATH); use --format mermaid")
    else:
        text = diagram.mermaid(d) if fmt == "mermaid" else diagram.dot(d)
    if out is None:
        click.echo(text, nl=False)
        return
    Path(out).write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}")
    if fmt == "mermaid":
        image = diagram.svg(d)
        if image is not None:
            svg_path = Path(out).with_suffix(".svg")
            svg_path.write_text(image, encoding="utf-8")
            click.echo(f"wrote {svg_path}")
