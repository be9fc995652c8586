"""Signed webhooks to a partner's own systems (PSA, accounting): endpoints and the
events they take (endpoints.py), events made from audit entries and from batches'
ends (events.py), their fan-out to endpoints and delivery with retries (delivery.py).
Messages follow the Standard Webhooks scheme, signed by the `standardwebhooks` package."""
