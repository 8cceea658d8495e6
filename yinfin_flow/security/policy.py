"""Who may call what: one table from endpoint to the access it needs.

Roles are data in the organisation directory (``user_roles``); the four the API knows
are :data:`ROLES`. Every identified user is an ``employee``; ``approver`` is whoever
has a task (tasks are checked one by one, not by role). Finance changes budgets,
rules, periods and postings; admins manage connectors and workflow definitions.
Admin is *not* a superuser: segregation of duties means the person who runs the
integration is not the one who moves money.

Object-level rules (an employee sees only their own requests, an approver only their
own or delegated tasks, nobody approves their own request) are enforced in the views
and the engine; this table is the first gate. An endpoint missing from the table is
refused (403) for everyone, and the authorization test fails until it is added.
"""

from __future__ import annotations

from dataclasses import dataclass

EMPLOYEE, APPROVER, FINANCE, ADMIN = "employee", "approver", "finance", "admin"
ROLES = (EMPLOYEE, APPROVER, FINANCE, ADMIN)


@dataclass(frozen=True)
class Access:
    """``kind``: ``public`` (no identity), ``signed`` (the OA connector's signature),
    ``user`` (any identified user; the view checks ownership) or ``roles``."""

    kind: str
    roles: frozenset[str] = frozenset()

    def allows(self, roles: frozenset[str]) -> bool:
        return self.kind != "roles" or bool(self.roles & roles)


PUBLIC = Access("public")
SIGNED = Access("signed")
USER = Access("user")


def only(*roles: str) -> Access:
    return Access("roles", frozenset(roles))


#: Object-level rules the views and services apply after this table's gate:
#: who sees every request (the requester and its approvers see their own);
SEES_ALL_REQUESTS = frozenset({FINANCE, ADMIN})
#: who adds attachments to, and reads the files of, any request (the requester adds
#: to their own; the requester and whoever has a task on it, delegates included, read
#: them). Admins run the integration, not the money: they see the attachment list a
#: request shows, never the files.
ATTACHMENTS_ANY = frozenset({FINANCE})

FINANCE_ONLY = only(FINANCE)
ADMIN_ONLY = only(ADMIN)
BOOKS = only(FINANCE, ADMIN)  # reading the ledger: finance, and admins checking a sync

#: endpoint (Flask ``blueprint.function``) -> access.
POLICY: dict[str, Access] = {
    # documents and liveness
    "yinfin-api-docs.openapi_json": PUBLIC,
    "yinfin-api-docs.openapi_swagger_ui": PUBLIC,
    "yinfin_flow_docs_assets.asset": PUBLIC,
    "health.health": PUBLIC,
    # budgets: everyone may look (an employee checks what is left before asking);
    # only finance changes them
    "budget.list_lines": USER,
    "budget.get_line": USER,
    "budget.get_tree": USER,
    "budget.list_entries": USER,
    "budget.list_alerts": USER,
    "budget.preview": USER,
    "budget.put_rule": FINANCE_ONLY,
    "budget.patch_line": FINANCE_ONLY,
    "budget.post_adjustment": FINANCE_ONLY,
    "budget.post_transfer": FINANCE_ONLY,
    "budget.post_import": FINANCE_ONLY,
    # budget journal proposals (four eyes): as rule changes
    "budget.list_journal_proposals": FINANCE_ONLY,
    "budget.get_journal_proposal": FINANCE_ONLY,
    "budget.approve_journal_proposal": FINANCE_ONLY,
    "budget.reject_journal_proposal": FINANCE_ONLY,
    "budget.withdraw_journal_proposal": FINANCE_ONLY,
    # rule changes (four eyes): finance proposes and decides; the service refuses the
    # proposer's own decision and anyone else's withdrawal
    "budget.list_rule_changes": FINANCE_ONLY,
    "budget.get_rule_change": FINANCE_ONLY,
    "budget.propose_rule_change": FINANCE_ONLY,
    "budget.approve_rule_change": FINANCE_ONLY,
    "budget.reject_rule_change": FINANCE_ONLY,
    "budget.withdraw_rule_change": FINANCE_ONLY,
    # what-if simulation of a rule: replays everyone's requests, so finance's
    "budget.simulate_rule": FINANCE_ONLY,
    # requests: own ones (finance and admins see all); the engine checks each action
    "requests.list_requests": USER,
    "requests.submit_request": USER,
    "requests.get_request": USER,
    "requests.withdraw_request": USER,
    "requests.resubmit_request": USER,
    "requests.cancel_request": USER,
    "requests.perform_event": USER,
    "requests.comment_request": USER,
    "requests.urge_request": USER,
    "requests.request_trail": USER,
    # attachments: the service checks the request (requester, its approvers, finance)
    "attachments.add_attachment": USER,
    "attachments.list_attachments": USER,
    "attachments.get_attachment": USER,
    "attachments.download_attachment": USER,
    # tasks: the assignee's or their delegate's
    "tasks.inbox": USER,
    "tasks.get_task": USER,
    "tasks.approve": USER,
    "tasks.reject": USER,
    "tasks.send_back": USER,
    "tasks.transfer": USER,
    "tasks.add_approver": USER,
    "tasks.comment": USER,
    "tasks.urge": USER,
    # the books
    "journal.list_entries": BOOKS,
    "journal.get_entry": BOOKS,
    "journal.reverse_entry": FINANCE_ONLY,
    "periods.list_periods": BOOKS,
    "periods.open_period": FINANCE_ONLY,
    "periods.close_period": FINANCE_ONLY,
    "periods.close_through": FINANCE_ONLY,
    "reports.trial_balance": BOOKS,
    "reports.budget_vs_actual": BOOKS,
    # definitions: anyone may read what applies to them; admins check drafts
    "workflows.list_workflows": USER,
    "workflows.get_workflow": USER,
    "workflows.validate_workflow": ADMIN_ONLY,
    # integration
    "connectors.list_connectors": ADMIN_ONLY,
    "connectors.list_dead_letters": ADMIN_ONLY,
    "connectors.replay_dead_letter": ADMIN_ONLY,
    "oa.inbound_events": SIGNED,
    "oa.verify_url": SIGNED,
    # delivery (the outbox): admins watch connectors; finance chases what did not arrive
    "delivery.connector_statuses": ADMIN_ONLY,
    "delivery.list_dead_letters": BOOKS,
    "delivery.replay_dead_letter": BOOKS,
    "delivery.replay_all_dead_letters": BOOKS,
    "delivery.reconciliation": BOOKS,
    # the web console (yinfin_flow.web): signing in is open; every page needs a
    # signed-in person, and the views check ownership exactly as the API's do
    "console.static": PUBLIC,
    "console.sign_in": PUBLIC,
    "console.sign_in_as": PUBLIC,  # development only (the view refuses it otherwise)
    "console.sign_out": PUBLIC,
    "console.language": PUBLIC,
    "console.home": USER,
    "console.inbox": USER,
    "console.batch": USER,
    "console.task": USER,
    "console.task_action": USER,
    "console.my_requests": USER,
    "console.request": USER,
    "console.request_print": USER,
    "console.request_action": USER,
    "console.new_request": USER,
    "console.line_search": USER,
    "console.line_preview": USER,
    "console.attachment_add": USER,  # the attachments service decides who may add or read
    "console.attachment_content": USER,
    # finance pages, budget side (yinfin_flow/web/finance: budget, journals, imports,
    # rules, simulate)
    # (finance reads and decides; admins may read)
    "console.finance_budget": BOOKS,
    "console.finance_line": BOOKS,
    "console.finance_journals": BOOKS,
    "console.finance_journal": BOOKS,
    "console.finance_journal_propose": FINANCE_ONLY,
    "console.finance_journal_decide": FINANCE_ONLY,
    "console.finance_imports": FINANCE_ONLY,
    "console.finance_import_post": FINANCE_ONLY,
    "console.finance_rules": BOOKS,
    "console.finance_rule": BOOKS,
    "console.finance_rule_propose": FINANCE_ONLY,
    "console.finance_rule_decide": FINANCE_ONLY,
    "console.finance_simulate": BOOKS,
    # tokens: one's own (admins issue and revoke anyone's)
    "tokens.list_tokens": USER,
    "tokens.create_token": USER,
    "tokens.revoke_token": USER,
    # finance pages, books side (yinfin_flow/web/finance: periods, vouchers, reports,
    # operations, workflows)
    "console.finance_periods": FINANCE_ONLY,
    "console.finance_period_close": FINANCE_ONLY,
    "console.finance_period_reopen": FINANCE_ONLY,
    "console.finance_vouchers": FINANCE_ONLY,
    "console.finance_voucher": FINANCE_ONLY,
    "console.finance_voucher_new": FINANCE_ONLY,
    "console.finance_voucher_reverse": FINANCE_ONLY,
    "console.finance_reports": FINANCE_ONLY,
    "console.finance_report_bva": FINANCE_ONLY,
    "console.finance_report_bva_drill": FINANCE_ONLY,
    "console.finance_report_tb": FINANCE_ONLY,
    "console.finance_report_trail": FINANCE_ONLY,
    "console.finance_export": FINANCE_ONLY,
    # operations: finance chases what did not arrive, admins run the connectors
    "console.finance_operations": BOOKS,
    "console.finance_replay": BOOKS,
    "console.finance_replay_all": BOOKS,
    "console.finance_verify": BOOKS,
    "console.finance_reconcile": BOOKS,
    # workflow definitions: admins check drafts; finance may read
    "console.finance_workflows": BOOKS,
    "console.finance_workflow": BOOKS,
    "console.finance_workflow_check": ADMIN_ONLY,
}


def access_for(endpoint: str | None) -> Access | None:
    """The access ``endpoint`` needs; None means "not in the table": refuse."""
    return POLICY.get(endpoint or "")
