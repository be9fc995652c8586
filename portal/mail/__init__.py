"""E-mail transport: SMTP settings, the client, and the delivery loop over the outbox."""
