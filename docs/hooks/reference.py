"""MkDocs hooks: the reference pages, generated from the code at every build (offline).

- ``reference/configuration.md``: from the settings code. ``yinfin_flow/config.py``
  (each :class:`Settings` field, the variable :meth:`Settings.from_env` reads it from, the
  default it has in an empty environment, the comment written beside it; the input
  limits with their floors), the delivery settings table of ``yinfin_flow/worker/config.py``,
  and every other ``YINFIN_*`` name the package and the connectors read, with where.
- ``reference/http.md``: the OpenAPI document of the app (the one served at
  ``/api/v1/openapi.json``), rendered to Markdown: one section per tag, one entry per
  operation with its parameters, body and answers, then the schemas.

Nothing is written to ``docs/``: the pages exist only in the built site.
"""

from __future__ import annotations

import ast
import io
import json
import os
import re
import tempfile
import tokenize
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"reference/configuration.md": "configuration_page", "reference/http.md": "http_page"}
VARIABLE = re.compile(r"YINFIN_[A-Z0-9_]*[A-Z0-9]")


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, make in PAGES.items():
        files.append(File.generated(config, path, content=globals()[make]()))
    return files


# -- configuration -------------------------------------------------------------------------


def _comments(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """Comment text by line number: those ending a line of code, and those on a line of
    their own (``#:`` doc comments included)."""
    trailing: dict[int, str] = {}
    alone: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#:").strip()
            (alone if tok.line.strip().startswith("#") else trailing)[tok.start[0]] = text
    return trailing, alone


def _described(comments: tuple[dict[int, str], dict[int, str]], node: ast.AST) -> str:
    """The comment lines right above a statement, then the comment ending it."""
    trailing, alone = comments
    line = node.lineno  # type: ignore[attr-defined]
    above: list[str] = []
    n = line - 1
    while n in alone:
        above.insert(0, alone[n])
        n -= 1
    end = getattr(node, "end_lineno", line)
    return " ".join([*above, *([trailing[end]] if end in trailing else [])])


def _rst(text: str) -> str:
    """Docstring markup as Markdown: ``code`` → `code`."""
    return re.sub(r"``(.+?)``", r"`\1`", text, flags=re.S)


def _cell(text: Any) -> str:
    return _rst(str(text)).replace("|", "\\|").replace("\n", " ")


def _shown(value: Any) -> str:
    text = str(value)
    for root, name in ((str(ROOT), "."), (str(Path.cwd()), ".")):
        text = text.replace(root, name)
    return f"`{text}`" if text not in ("", "None") else "unset"


def settings_rows() -> list[tuple[str, str, str, str]]:
    """(variable, field, default, meaning) of each :class:`Settings` field read from a variable."""
    from yinfin_flow.config import Settings

    source = (ROOT / "yinfin_flow" / "config.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    comments = _comments(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    meaning = {n.target.id: _described(comments, n) for n in cls.body
               if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    from_env = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "from_env")
    variable: dict[str, str] = {}
    for call in ast.walk(from_env):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "cls":
            for kw in call.keywords:
                names = [c.value for c in ast.walk(kw.value)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str)
                         and VARIABLE.fullmatch(c.value)]
                if not names:  # read by a helper of the module, e.g. database_schema(env)
                    helpers = {c.func.id for c in ast.walk(kw.value)
                               if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
                    names = [c.value for f in tree.body if isinstance(f, ast.FunctionDef)
                             and f.name in helpers for c in ast.walk(f)
                             if isinstance(c, ast.Constant) and isinstance(c.value, str)
                             and VARIABLE.fullmatch(c.value)]
                if names and kw.arg:
                    variable[kw.arg] = names[0]
    blank = {k: v for k, v in os.environ.items() if not k.startswith("YINFIN_")}
    defaults = Settings.from_env(blank)
    return [(variable[name], name, _shown(getattr(defaults, name)), text)
            for name, text in meaning.items() if name in variable]


def limit_rows() -> list[tuple[str, str, str, str]]:
    """(variable, default, floor, meaning) of each input limit."""
    from yinfin_flow.config import LIMIT_VARIABLES
    from yinfin_flow.domain.limits import DEFAULT_LIMITS

    source = (ROOT / "yinfin_flow" / "domain" / "limits.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    comments = _comments(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Limits")
    meaning = {n.target.id: _described(comments, n) for n in cls.body
               if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return [(var, f"{getattr(DEFAULT_LIMITS, name):,}", f"{floor:,}", meaning.get(name, ""))
            for name, (var, floor) in LIMIT_VARIABLES.items()]


def delivery_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) from the table in ``yinfin_flow/worker/config.py``'s docstring."""
    doc = ast.get_docstring(ast.parse((ROOT / "yinfin_flow" / "worker" / "config.py")
                                      .read_text(encoding="utf-8"))) or ""
    rows: list[list[str]] = []
    for line in doc.splitlines():
        m = re.match(r"(YINFIN_\w+)\s+(\S+)\s+(.*)", line)
        if m:
            rows.append([m[1], m[2], m[3].strip()])
        elif rows and line.startswith(" ") and line.strip() and not line.strip().startswith("="):
            rows[-1][2] += " " + line.strip()
    return [(v, d, re.sub(r"``(.+?)``", r"`\1`", re.sub(r":func:`(.+?)`", r"`\1`", t)))
            for v, d, t in rows]


def _sentence(doc: str | None, name: str) -> str:
    """The first sentence of ``doc`` that names ``name``."""
    text = " ".join((doc or "").split("::")[0].split())  # not a literal block after ::
    for sentence in re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<=[.;])\s+(?=[A-Z`(])", text):
        if name in sentence:
            return _rst(sentence)
    return ""


def other_variables(described: set[str]) -> dict[str, tuple[list[str], str]]:
    """Every other ``YINFIN_*`` name in the code of the package and the connectors (string
    constants, not docstrings or comments): the modules that use it, and the shortest
    sentence naming it in a docstring near a use (its function's or its module's)."""
    found: dict[str, set[str]] = {}
    said: dict[str, set[str]] = {}
    for base in (ROOT / "yinfin_flow", ROOT / "connectors"):
        for path in sorted(base.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            scopes = [n for n in ast.walk(tree) if isinstance(
                n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
            docstrings = {id(n.body[0].value) for n in scopes
                          if n.body and isinstance(n.body[0], ast.Expr)
                          and isinstance(n.body[0].value, ast.Constant)}
            # keys the package sets in app.config for itself (setdefault): not settings
            own_keys = {id(c.args[0]) for c in ast.walk(tree) if isinstance(c, ast.Call)
                        and isinstance(c.func, ast.Attribute) and c.func.attr == "setdefault"
                        and c.args and isinstance(c.args[0], ast.Constant)}
            for scope in scopes:
                for node in ast.walk(scope):
                    if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                            and id(node) not in docstrings and VARIABLE.fullmatch(node.value)
                            and node.value not in described and id(node) not in own_keys):
                        found.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
                        for doc in (ast.get_docstring(scope), ast.get_docstring(tree)):
                            sentence = _sentence(doc, node.value)
                            if sentence and len(sentence) <= 300:
                                said.setdefault(node.value, set()).add(sentence)
    # a name that only starts others (a prefix the code completes) is not a variable
    def best(name: str) -> str:  # the one naming it first, then the fullest
        return min(said.get(name, {""}), key=lambda t: (t.find(name), -len(t)))

    return {k: (sorted(v), best(k)) for k, v in sorted(found.items())
            if not any(other.startswith(k + "_") for other in found)}


def configuration_page() -> str:
    out = ["# Configuration reference", "",
           "Generated from the settings code at every build of this site: do not edit by hand. "
           "Every setting comes from the environment; a host application may set the same "
           "keys in `app.config`. Defaults are those of an empty environment in a checkout "
           "(`.` is the checkout; an installed package uses the folder it runs in).", "",
           "## Application (`yinfin_flow/config.py`)", "",
           "| variable | default | meaning |", "|---|---|---|"]
    settings = settings_rows()
    out += [f"| `{v}` | {_cell(d)} | {_cell(t)} |" for v, _, d, t in settings]
    out += ["", "## Input limits (`yinfin_flow/config.py`, `yinfin_flow/domain/limits.py`)", "",
            "A value below the floor is refused at start-up.", "",
            "| variable | default | floor | limits |", "|---|---|---|---|"]
    limits = limit_rows()
    out += [f"| `{v}` | {d} | {f} | {_cell(t)} |" for v, d, f, t in limits]
    out += ["", "## Delivery (`yinfin_flow/worker/config.py`)", "",
            "| variable | default | meaning |", "|---|---|---|"]
    delivery = delivery_rows()
    out += [f"| `{v}` | `{d}` | {_cell(t)} |" for v, d, t in delivery]
    described = {r[0] for r in settings} | {r[0] for r in limits} | {r[0] for r in delivery}
    others = other_variables(described)
    connectors: dict[str, list[str]] = {}
    for v, (where, _) in others.items():
        if all(m.startswith("connectors/") for m in where):
            for m in where:
                connectors.setdefault(m, []).append(v)
    out += ["", "## Connectors", "",
            "Each connector's credentials and options; what each means and the vendor-console "
            "steps are in [connectors/README.md](https://github.com/yinfin/yinfin-flow/blob/main/connectors/README.md).", "",
            "| connector | variables |", "|---|---|"]
    out += [f"| `{m}` | {', '.join(f'`{v}`' for v in names)} |" for m, names in sorted(connectors.items())]
    out += ["", "## Other variables", "",
            "Read where they are used, with what the code says of each.", "",
            "| variable | read in | meaning |", "|---|---|---|"]
    out += [f"| `{v}` | {', '.join(f'`{m}`' for m in where)} | {_cell(text)} |"
            for v, (where, text) in others.items()
            if not all(m.startswith("connectors/") for m in where)]
    return "\n".join(out) + "\n"


# -- HTTP ----------------------------------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, from an app on a throwaway SQLite database."""
    from yinfin_flow.app import create_app
    from yinfin_flow.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        blank = {k: v for k, v in os.environ.items() if not k.startswith("YINFIN_")}
        blank.update(YINFIN_DATABASE_URL=f"sqlite:///{tmp}/docs.sqlite", YINFIN_INSTANCE_DIR=tmp)
        app = create_app(Settings.from_env(blank))
        answer = app.test_client().get("/api/v1/openapi.json")
        if answer.status_code != 200:
            raise RuntimeError(f"/api/v1/openapi.json answered {answer.status_code}")
        return json.loads(answer.get_data(as_text=True))


def _ref(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{_anchor('schema-' + name)})"
    if schema.get("type") == "array":
        return f"array of {_ref(schema.get('items', {}))}"
    for key in ("allOf", "oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_ref(s) for s in schema[key])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    return kind + (f" ({schema['format']})" if "format" in schema else "")


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def http_page() -> str:
    doc = openapi_document()
    out = ["# HTTP reference", "",
           f"{doc['info']['title']} {doc['info'].get('version', '')}, OpenAPI {doc.get('openapi', '')}. "
           "Generated at every build of this site from the OpenAPI document the app serves "
           "at `/api/v1/openapi.json` (browsable at `/api/v1/docs`): do not edit by hand. "
           "How to call it (tokens, errors, money, limits, idempotency): [The HTTP API](../api.md).", ""]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                op = {**op, "parameters": [*shared, *op.get("parameters", [])]}
                by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method, path, op))
    descriptions = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    for tag in sorted(by_tag):
        out += [f"## {tag}", ""]
        if descriptions.get(tag):
            out += [descriptions[tag], ""]
        for method, path, op in by_tag[tag]:
            out += [f"### `{method.upper()} {path}`", ""]
            summary = " ".join(x for x in (op.get("summary"), op.get("description")) if x)
            if summary:
                out += [_rst(summary), ""]
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
                out += [f"| `{p['name']}` | {p['in']} | {_cell(_ref(p.get('schema', {})))} | "
                        f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description', ''))} |"
                        for p in params]
                out.append("")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                out += [f"Body ({media}): {_ref(content.get('schema', {}))}", ""]
            answers = op.get("responses", {})
            if answers:
                out += ["| answer | description | body |", "|---|---|---|"]
                for code, answer in answers.items():
                    if "$ref" in answer:
                        name = answer["$ref"].rsplit("/", 1)[1]
                        answer = doc.get("components", {}).get("responses", {}).get(name, {})
                    schema = next(iter(answer.get("content", {}).values()), {}).get("schema")
                    out.append(f"| {code} | {_cell(answer.get('description', ''))} | "
                               f"{_cell(_ref(schema)) if schema else ''} |")
                out.append("")
    schemas = doc.get("components", {}).get("schemas", {})
    if schemas:
        out += ["## Schemas", ""]
        for name, schema in sorted(schemas.items()):
            out += [f"### {name} {{#{_anchor('schema-' + name)}}}", ""]
            if schema.get("description"):
                out += [_rst(schema["description"]), ""]
            props = schema.get("properties", {})
            if props:
                required = set(schema.get("required", []))
                out += ["| field | type | required | description |", "|---|---|---|---|"]
                out += [f"| `{field}` | {_cell(_ref(p))} | {'yes' if field in required else 'no'} | "
                        f"{_cell(p.get('description', ''))} |" for field, p in props.items()]
                out.append("")
            else:
                out += [f"Type: {_ref(schema)}", ""]
    return "\n".join(out) + "\n"
