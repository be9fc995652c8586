"""Billing pages (issue 11): the customer's billing dashboard and the partner's."""

from __future__ import annotations

from typing import Any

# Registered by portal/web/app.py beside the other page controllers.
BILLING_ROUTES: list[Any] = []
