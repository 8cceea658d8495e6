"""The README's and the documentation's examples work as written, against a fresh demo.

What runs and how is described in :mod:`tests.docs.examples` (and docs/development.md).
One test per Markdown file with runnable blocks: its blocks run in order in one fresh
instance; the first that fails fails the test, naming the file and line of the block with
what it printed.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.docs.examples import NOT_RUN, ROOT, Instance, blocks, documents

pytestmark = pytest.mark.slow

FILES = [p for p in documents() if any(b.skip is None for b in blocks(p))]


def test_the_convention_finds_examples() -> None:
    """The README and the docs hold runnable examples, and every not-run mark has a reason
    and sits right above a block (a mark that lost its block skips nothing and says so)."""
    assert ROOT / "README.md" in FILES
    assert len(FILES) >= 5
    for path in documents():
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.lstrip().startswith("<!--") and "not-run" in line:
                assert NOT_RUN.fullmatch(line.strip()), f"{path}:{i + 1}: write <!-- not-run: reason -->"
                nxt = lines[i + 1].lstrip() if i + 1 < len(lines) else ""
                assert nxt.startswith(("```bash", "```python", "```sh")), \
                    f"{path}:{i + 1}: a not-run mark must stand right above a bash or python block"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_examples_run(path: Path, tmp_path: Path) -> None:
    instance = Instance(tmp_path)
    instance.load_demo()
    runnable = [b for b in blocks(path) if b.skip is None]
    needs_server = any("127.0.0.1:5000" in b.text or "YINFIN_URL" in b.text for b in runnable)
    with instance.serving() if needs_server else nullcontext():
        for block in runnable:
            done = instance.execute(block)
            if done.returncode != 0:
                pytest.fail(f"the example at {block.where()} failed (exit {done.returncode}):\n"
                            f"{block.text}\n--- stdout\n{done.stdout[-4000:]}\n"
                            f"--- stderr\n{done.stderr[-4000:]}", pytrace=False)

