"""Renewals that run by themselves (seed 000: "automatically set to
renew one year after your initial payment date").

Online subscriptions (`renew_due`): from a day before the term ends, the
renewal invoice is issued, the saved card charged, and the paid term
provisioned as a new licence batch starting where the old one ends, with the
current seat holders carried over. A declined charge is tried again 2, 4 and 7
days after the term's end (three retries in seven days), the customer's managers
e-mailed each time; after the last the subscription lapses (its seats stopped at
the term's end: no batch was made for the next term).

Invoice subscriptions (`issue_renewal_invoices`): the renewal invoice 30 days
before the end, a reminder 72 hours before it while unpaid. Paying it
(settlement.record_payment) provisions the next term from the old end, so a
renewal paid early leaves no gap.

`lapse_unpaid`: at the term's end a cancelled subscription ends, an unpaid one lapses.

Idempotent by construction, whoever runs it and however often:
- the renewal invoice has the key schedule.renewal_key (subscription and term);
- each charge attempt is a card_charge row keyed "<invoice>:<attempt>" written
  (pending) before the processor is asked with that key, as
  payments.charge_invoice does; a processor answers a key once;
- a claim: the chunk's subscriptions get `next_charge_at` = now + lease in the
  transaction that picks them (PostgreSQL skips rows another worker is
  picking), so a second worker passes them by; a worker that dies gives them
  back when the lease runs out, and the next asks the processor again with the
  same key, which charges nothing twice;
- the result is written only while the subscription still ends where it was
  claimed, so a term is provisioned once.

Set-based per chunk (a few statements for 500 subscriptions, whatever their
number); the processor is asked once per card, outside any transaction.

The modules: online.py claims and charges online renewals; next_term.py
records the answers and provisions the paid terms; invoicing.py issues a chunk's
renewal invoices; invoice_subscriptions.py invoices and reminds invoice
subscriptions; lapse.py ends what ran out; notices.py writes their e-mails and
audit entries; schedule.py says when."""
