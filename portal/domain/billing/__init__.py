"""Subscriptions and billing (seed 000): catalogue, prices, invoices, payments, renewals."""
