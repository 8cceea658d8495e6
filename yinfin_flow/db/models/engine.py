"""Approval engine tables (requests, tasks, history, timers). Owned by the engine area."""
