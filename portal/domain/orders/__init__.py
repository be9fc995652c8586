"""Orders: "Request Licenses" → "Requested Orders" → "Assign" (or "Decline").

requests: what Request Licenses advises before a request, and the request;
decisions: Assign (the batch and its clock), Decline, cancel, the Free trial;
order_list: Requested Orders with its filters and choices, a customer's orders,
one order, the rows of a download.
"""
