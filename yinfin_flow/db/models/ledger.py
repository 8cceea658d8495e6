"""Accounting tables (accounts, periods, journal entries). Owned by the ledger area."""
