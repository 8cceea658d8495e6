"""State diagrams of a definition: Mermaid text always, Graphviz DOT (and SVG via ``dot``).

Transitions are labelled with their event, who takes it, the budget action and the
posting template; approval states list their steps (mode, condition).
"""

from __future__ import annotations

import shutil
import subprocess

from yinfin_flow.domain.workflow import Definition


def _label(t_event: str, by: str, budget: str, posting: str | None) -> str:
    parts = [t_event]
    if by not in ("requester", "approver"):
        parts.append(f"[{by}]")
    if budget != "none":
        parts.append(f"budget: {budget}")
    if posting:
        parts.append(f"post: {posting}")
    return " · ".join(parts)


def mermaid(d: Definition) -> str:
    lines = ["stateDiagram-v2", f"    %% {d.name} v{d.version}: {d.title}",
             f"    [*] --> {d.initial}"]
    for name, st in d.states.items():
        lines.append(f"    {name} : {st.title}")
        for s in st.steps:
            cond = f" when {s.when}" if s.when else ""
            lines.append(f"    {name} : step {s.id} ({s.mode}){cond}".replace('"', "'"))
    for t in d.transitions:
        for src in t.sources:
            lines.append(f"    {src} --> {t.dest} : {_label(t.event, t.by, t.budget, t.posting)}")
    for name in sorted(d.finals):
        lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"


def dot(d: Definition) -> str:
    out = [f'digraph "{d.name}" {{', "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="Helvetica"];',
           '  __start [shape=point];', f"  __start -> {d.initial};"]
    for name, st in d.states.items():
        label = st.title + "".join(f"\\n· {s.id} ({s.mode})" for s in st.steps)
        shape = ", peripheries=2" if st.final else ""
        out.append(f'  {name} [label="{label}"{shape}];')
    for t in d.transitions:
        for src in t.sources:
            out.append(f'  {src} -> {t.dest} [label="{_label(t.event, t.by, t.budget, t.posting)}"];')
    out.append("}")
    return "\n".join(out) + "\n"


def svg(d: Definition) -> str | None:
    """SVG through Graphviz's ``dot`` when it is installed; None otherwise."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    done = subprocess.run([exe, "-Tsvg"], input=dot(d), capture_output=True, text=True, check=True, timeout=30)
    return done.stdout
