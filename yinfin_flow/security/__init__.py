"""Security: API tokens, roles and the authorization policy, the hash-chained audit
log, idempotency records and rate limits on authentication failures.

Pure-ish services over the caller's session (no Flask here); the HTTP wiring is
:mod:`yinfin_flow.api.guard`.
"""
