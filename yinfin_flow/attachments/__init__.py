"""Attachments: receipts and invoices on requests (service, storage, event handlers).

- :mod:`.storage`: the content-addressed byte store (a directory by default);
- :mod:`.service`: add, list and read, with who may do each and the one-claim-per-invoice
  rule; the rules themselves (types, names, invoice numbers) are in
  :mod:`yinfin_flow.domain.attachments`;
- :mod:`.handlers`: a request that ends rejected, withdrawn or cancelled releases its invoices.
"""
