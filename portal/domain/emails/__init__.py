"""E-mails by kind: the registry (kinds.py), rendering when they go
(content.py), and `queue.queue_kind`, which the code that causes an e-mail calls
with the kind's name and its fields. Sending is portal/mail/'s."""
