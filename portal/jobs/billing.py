"""Billing jobs (issue 11): renewals of online subscriptions, renewal invoices.
Thin: the rules live in portal/domain/billing/."""

from __future__ import annotations

from typing import Any

# Taken by portal/jobs/worker.py, as the mail jobs are.
BILLING_FUNCTIONS: list[Any] = []
BILLING_CRON_JOBS: list[Any] = []
