"""Find the runnable examples of the documentation and run them against a fresh demo.

The convention (also written in docs/development.md, "Examples that run"):

- every fenced block opened with ```bash or ```python in README.md or docs/**/*.md runs,
  in the order it appears, unless the line just before its opening fence is
  ``<!-- not-run: reason -->`` (the reason says why: a file the reader brings, a vendor
  system, a command that never returns...); blocks in any other language (``text``,
  ``console``, ``yaml``, ``json``) are illustrations and never run;
- each file runs in a fresh instance of its own: an empty folder holding a SQLite
  database on which ``yinfin-flow db upgrade`` and ``yinfin-flow demo load`` have run,
  with ``yinfin-flow serve`` started on a free port when the file's examples call the API;
  the folder also offers ``examples/`` (the repository's sample files) and
  ``.venv/bin/activate`` (the running interpreter's environment), as a checkout does;
- the address the docs tell the reader to use, ``http://127.0.0.1:5000``, is replaced by
  the test server's in every block;
- bash blocks run with ``set -euo pipefail`` and share their exported variables (a token
  made by ``export AMY=$(yinfin-flow token create ...)`` in one block is there in the
  next, and so is a shell function one defines); ``curl`` fails on an HTTP error answer (it runs as ``curl --fail-with-body``);
  python blocks run on their own in the same environment (they share no variables);
- neither ``USER`` nor ``USERNAME`` is set, so no example can lean on who runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC_URL = "http://127.0.0.1:5000"
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
BLOCK_TIMEOUT = 180


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str  # bash | python
    text: str
    skip: str | None  # the not-run reason

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The bash and python blocks of one Markdown file, in order (skipped ones included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].lstrip())
        if not m:
            i += 1
            continue
        fence, lang, start = m["fence"], m["lang"].lower(), i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].lstrip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        if lang not in RUNNABLE:
            continue
        before = lines[start - 1].strip() if start else ""
        mark = NOT_RUN.fullmatch(before)
        found.append(Block(path, start + 1, RUNNABLE[lang], "\n".join(body) + "\n",
                           mark["reason"] if mark else None))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Instance:
    """A fresh demo in ``folder``: the environment, the server, the shared shell state."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = f"http://127.0.0.1:{free_port()}"
        bindir = Path(sys.executable).parent
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("YINFIN_") and k not in ("USER", "USERNAME", "LOGNAME")}
        env.update({
            "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}",
            "HOME": str(folder),
            "YINFIN_INSTANCE_DIR": str(folder / "instance"),
            "YINFIN_DATABASE_URL": f"sqlite:///{folder / 'instance' / 'yinfin.sqlite'}",
            "YINFIN_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        })
        self.env = env
        self.state = folder / ".examples-state.sh"
        self.state.write_text("", encoding="utf-8")
        (folder / "instance").mkdir()
        if (ROOT / "examples").is_dir():
            (folder / "examples").symlink_to(ROOT / "examples")
        venv = folder / ".venv" / "bin"
        venv.mkdir(parents=True)
        (venv / "activate").write_text(f'export PATH="{bindir}:$PATH"\n', encoding="utf-8")
        self.curl = folder / ".examples-curl"
        self.curl.mkdir()
        real = shutil.which("curl") or "/usr/bin/curl"
        (self.curl / "curl").write_text(f'#!/bin/sh\nexec {real} --fail-with-body "$@"\n',
                                        encoding="utf-8")
        (self.curl / "curl").chmod(0o755)
        self.env["PATH"] = f"{self.curl}{os.pathsep}{self.env['PATH']}"

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=self.folder, env=self.env, text=True, capture_output=True,
                              timeout=600, check=False)

    def load_demo(self) -> None:
        for argv in (("yinfin-flow", "db", "upgrade"), ("yinfin-flow", "demo", "load")):
            done = self.run(*argv)
            assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"

    @contextmanager
    def serving(self) -> Iterator[None]:
        port = self.url.rsplit(":", 1)[1]
        log = (self.folder / "serve.log").open("w", encoding="utf-8")
        proc = subprocess.Popen(["yinfin-flow", "serve", "--host", "127.0.0.1", "--port", port],
                                cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=2):
                        break
                except OSError as err:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(
                            f"yinfin-flow serve did not answer ({err}):\n"
                            + (self.folder / "serve.log").read_text(encoding="utf-8")) from None
                    time.sleep(0.3)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()

    def execute(self, block: Block) -> subprocess.CompletedProcess[str]:
        text = block.text.replace(DOC_URL, self.url)
        script = self.folder / f".block-{block.line}.{'sh' if block.lang == 'bash' else 'py'}"
        script.write_text(text, encoding="utf-8")
        if block.lang == "bash":
            runner = (f'set -a; . "{self.state}"; set +a; set -euo pipefail; . "{script}"; '
                      f'{{ export -p | grep -v -E "^declare -x (PWD|OLDPWD|SHLVL|_)="; declare -f; }} > "{self.state}"')
            argv = ["bash", "-c", runner]
        else:
            argv = ["bash", "-c", f'set -a; . "{self.state}"; set +a; exec python "{script}"']
        return subprocess.run(argv, cwd=self.folder, env=self.env, text=True, capture_output=True,
                              timeout=BLOCK_TIMEOUT, check=False)
