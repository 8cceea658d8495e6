"""Reliable delivery to the OA and ERP, master-data sync, reconciliation, ops.

How a message travels:

1. An engine or ledger action publishes an event (``journal.posted``,
   ``request.status_changed``, ``task.created``…); :mod:`.handlers` writes an
   ``outbox_messages`` row **in the same transaction** (:mod:`.outbox`). Roll back
   the action and the message never existed; commit it and the message is owed.
2. After the commit a *kick* wakes a deliverer: a Celery ``yinfin.deliver`` task when
   ``YINFIN_REDIS_URL`` is set (:mod:`.celery_app`), else the in-process thread
   (:mod:`.runner`). The kick is only a hint: the beat ``sweep`` (every 10 s) and the
   runner's poll find due rows anyway, so a lost task or a Redis restart loses nothing.
3. The dispatcher (:mod:`.dispatcher`) claims due rows (per target and document in
   order; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), calls the connector outside any
   transaction with the row's idempotency key, and records delivered / retry later
   (exponential backoff with jitter) / dead. Dead letters are listed and replayed
   through the API and CLI.

Also here: :mod:`.masterdata` (incremental sync by watermark), :mod:`.reconcile`
(our vouchers vs the ERP's), :mod:`.jobs` (the periodic jobs and their schedule),
:mod:`.leases` (one runner per job), :mod:`.logs` (JSON logs with request and
document ids), :mod:`.config` (the ``YINFIN_*`` variables).
"""
