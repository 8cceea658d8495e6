"""The documentation site builds in strict mode (a broken link, a missing page or anchor
fails it) with its generated reference pages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.docs.examples import ROOT


def test_the_site_builds_strictly_with_its_generated_references(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr

    configuration = (site / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    for name in ("YINFIN_DATABASE_URL", "YINFIN_MAX_BODY_BYTES", "YINFIN_OUTBOX_LEASE", "YINFIN_PUBLIC_URL"):
        assert name in configuration, name
    http = (site / "reference" / "http" / "index.html").read_text(encoding="utf-8")
    for operation in ("POST /api/v1/requests", "POST /api/v1/tasks/{task_id}/approve",
                      "GET /api/v1/budget/lines"):
        assert operation in http, operation


def test_every_page_is_in_the_navigation() -> None:
    """A page left out of ``nav`` is reachable only by chance: every Markdown file of docs/
    is listed (the generated reference pages too)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda *_: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)

    def pages(nav: object) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, list):
            return [p for item in nav for p in pages(item)]
        if isinstance(nav, dict):
            return [p for value in nav.values() for p in pages(value)]
        return []

    listed = set(pages(config["nav"]))
    present = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert present - listed == set(), "pages missing from nav in mkdocs.yml"
    assert {"reference/http.md", "reference/configuration.md", "demo.md"} <= listed
