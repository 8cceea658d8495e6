"""Organisation directory (users, roles, delegations). Owned by the approvers area."""
