"""``yinfin-flow budget simulate``: what a control rule would have done (规则模拟).

Replays a line's consumption (its subtree's) over a window, default the last 12 months,
under the rule in force and under the rule given (or a pending rule change's), with the
control code live reservations run. Read-only; on the read database when
``YINFIN_DATABASE_READ_URL`` is set.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click

from yinfin_flow.budget import simulation as sim
from yinfin_flow.db.models.rule_changes import RuleChange
from yinfin_flow.domain.budget import Mode
from yinfin_flow.domain.errors import NotFound, ValidationError

from .common import default_rule, find_line, handle_errors, money, read_unit_of_work, table
from .output import Col, emit, emit_one, format_option, json_option


def _side(label: str, d: dict[str, Any], currency: str) -> list[str]:
    peak = "-" if d["peak_usage_percent"] is None else f"{d['peak_usage_percent']}% on {d['peak_on']}"
    return [label, d["rule"]["description"],
            f"{d['refused']} ({money(Decimal(d['refused_amount']), currency)})",
            f"{d['warned']} ({money(Decimal(d['warned_amount']), currency)})",
            peak, str(d["first_negative_on"] or "-")]


def render(result: dict[str, Any]) -> str:
    """The two rules side by side, then the requests they decide differently."""
    cur = result["currency"]
    lines = [f"{result['line']}: {result['requests']} request(s) from {result['from']} to {result['to']}, "
             f"amounts in {cur}", ""]
    lines.append(table(["rule", "", "refused", "warned", "peak utilisation", "available < 0 on"],
                       [_side("in force", result["current"], cur), _side("proposed", result["proposed"], cur)]))
    for key, title in (("passed_only_under_current", "passed only under the rule in force"),
                       ("passed_only_under_proposed", "passed only under the proposed rule"),
                       ("warned", "warned under the proposed rule")):
        block = result[key]
        if not block["count"]:
            continue
        lines += ["", f"{title}: {block['count']}"]
        rows = [[str(r["on"]), r["document"] or "-", money(Decimal(r["amount"]), cur),
                 f"{r['proposed']['level'] or '-'} at {r['proposed']['threshold'] or '-'}",
                 r["proposed"]["decided_by"] or "-"] for r in block["items"][:20]]
        lines.append(table(["on", "request", "amount", "proposed", "decided by"], rows, right=[2]))
    return "\n".join(lines)


@click.command("simulate")
@click.argument("line")
@click.option("--change", "change_id", type=int, help="Simulate this rule change's proposed rule.")
@click.option("--mode", type=click.Choice([m.value for m in Mode]), help="The hypothetical rule's mode.")
@click.option("--tolerance-percent")
@click.option("--tolerance-amount")
@click.option("--basis", type=click.Choice(["period", "cumulative", "annual", "overall"]), default="period",
              show_default=True)
@click.option("--threshold", "thresholds", multiple=True, help="PERCENT:ACTION[:notify], repeatable.")
@click.option("--no-subtree", is_flag=True, help="The rule for this line only, not the lines below it.")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), help="First day (default: a year ago).")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), help="Last day, included (default: today).")
@format_option
@json_option
@handle_errors
def simulate(line: str, change_id: int | None, mode: str | None, tolerance_percent: str | None,
             tolerance_amount: str | None, basis: str, thresholds: tuple[str, ...], no_subtree: bool,
             start: Any, end: Any, fmt: str, as_json: bool) -> None:
    """Replay LINE's requests under the rule in force and a proposed rule, side by side.

    JSON: the whole answer (as the API gives it); CSV: the two rules' figures, one row each."""
    from .budget import parse_threshold

    with read_unit_of_work() as session:
        ln = find_line(session, line)
        if change_id is not None:
            row = session.get(RuleChange, change_id)
            if row is None or row.line_id != ln.id:
                raise NotFound(f"no rule change {change_id} on {ln.code}", field="change")
            rule: dict[str, Any] = {"mode": row.mode, "basis": row.basis, "subtree": row.subtree,
                                    "thresholds": row.thresholds, "tolerance_percent": row.tolerance_percent,
                                    "tolerance_amount": row.tolerance_amount}
        elif mode is None:
            raise ValidationError("mode", "give --mode (and the rest of the rule) or --change ID")
        else:
            rule = {"mode": mode, "basis": basis, "subtree": not no_subtree,
                    "thresholds": [parse_threshold(t) for t in thresholds] or None,
                    "tolerance_percent": tolerance_percent, "tolerance_amount": tolerance_amount}
        result = sim.simulate(session, ln.id, rule, default_rule=default_rule(),
                              start=start.date() if start else None, end=end.date() if end else None)
    fmt = "json" if as_json else fmt
    if fmt == "json":
        emit_one(result, "json")
    elif fmt == "csv":
        keys = ("refused", "refused_amount", "warned", "warned_amount", "peak_usage_percent", "peak_on",
                "first_negative_on")
        emit([{"rule": label, "description": result[side]["rule"]["description"],
               **{k: result[side][k] for k in keys}}
              for label, side in (("in force", "current"), ("proposed", "proposed"))],
             [Col("rule"), Col("description"), *(Col(k) for k in keys)], "csv")
    else:
        click.echo(render(result))
