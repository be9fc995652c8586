"""The audit log: who did what, to which company, acting as which company.

`record` writes an entry (entries.py); sentences.py says each kind of entry in
words; log.py lists them under a wing with filters and a cursor; retention.py
keeps them for the period a partner chose; export.py writes them as CSV."""

from portal.domain.audit.entries import record, record_sign_in
from portal.domain.audit.log import AUDIT_FILTERS, filter_choices, iter_entries, list_entries, parse_filters
from portal.domain.audit.sentences import GROUPS, SENTENCES

__all__ = [
    "AUDIT_FILTERS",
    "GROUPS",
    "SENTENCES",
    "filter_choices",
    "iter_entries",
    "list_entries",
    "parse_filters",
    "record",
    "record_sign_in",
]
