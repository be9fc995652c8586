"""An example PSA sync against the portal's API: what a ConnectWise, Autotask or
HaloPSA integration does, in a page of Python (docs/integrations.md maps each part).

    python scripts/psa_sync_example.py --base-url http://127.0.0.1:8000 --key lp_…

It reads every customer (a PSA company), every assigned order (an agreement
addition: product, quantity, start and end), the invoices (accounting), and
prints what it would write to the PSA; `--state` keeps the cursors between runs,
so the next run starts from the last page it read instead of the first. With `--order COMPANY_ID:QUANTITY` it also
requests licenses, with an Idempotency-Key so a retried run orders once.
Uses only httpx; the key needs the read scope (billing for invoices, orders to order)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx


def sync(client: httpx.Client, path: str, cursor: str | None, handle, **params: object) -> str | None:
    """Hand every row after `cursor` to `handle`, a page at a time; the cursor to start
    from next run (the last page's, so its rows are not read again)."""
    while True:
        answer = client.get(path, params={**params, **({"cursor": cursor} if cursor else {}), "limit": 100})
        if answer.status_code == 429:  # over the key's limit this minute: wait as told, then ask again
            time.sleep(int(answer.headers.get("retry-after", "1")))
            continue
        if answer.status_code == 403:
            return cursor  # the key lacks the scope: this part is skipped
        answer.raise_for_status()
        body = answer.json()
        for row in body["data"]:
            handle(row)
        if not body["next_cursor"]:
            return cursor
        cursor = body["next_cursor"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True, help="an API key made under API keys")
    parser.add_argument("--state", type=Path, help="a JSON file keeping the cursors between runs")
    parser.add_argument("--order", help="COMPANY_ID:QUANTITY: request licenses for a customer")
    args = parser.parse_args()
    state = json.loads(args.state.read_text()) if args.state and args.state.exists() else {}
    headers = {"Authorization": f"Bearer {args.key}"}
    counts = {"customers": 0, "additions": 0, "invoices": 0}
    with httpx.Client(base_url=args.base_url, headers=headers, timeout=30) as client:

        def company(row: dict) -> None:
            if row["kind"] == "customer":
                counts["customers"] += 1
                print(f"PSA company      #{row['id']} {row['name']}")

        def addition(row: dict) -> None:
            counts["additions"] += 1
            batch = client.get(f"/api/v1/batches/{row['batch_id']}").json()
            print(
                f"Agreement add.   company #{row['company_id']}: {row['quantity']} × {row['product']} from "
                f"{batch['starts_at'][:10]} to {batch['ends_at'][:10]} "
                f"(order #{row['id']}, PO {row['po_number'] or '–'})"
            )

        def invoice(row: dict) -> None:
            counts["invoices"] += 1
            print(
                f"Accounting       invoice {row['number']} to company #{row['company_id']}: "
                f"{row['total_cents'] / 100:,.2f} {row['currency']}, {row['status']}"
            )

        state["companies"] = sync(client, "/api/v1/companies", state.get("companies"), company)
        state["orders"] = sync(client, "/api/v1/orders", state.get("orders"), addition, status="assigned")
        state["invoices"] = sync(client, "/api/v1/invoices", state.get("invoices"), invoice)
        if args.order:
            company_id, quantity = (int(part) for part in args.order.split(":"))
            made = client.post(
                "/api/v1/orders",
                json={"company_id": company_id, "quantity": quantity, "po_number": "PSA sync"},
                headers={"Idempotency-Key": f"psa-{company_id}-{quantity}"},
            )
            made.raise_for_status()
            print(f"Ordered          {quantity} licenses for company #{company_id}: order #{made.json()['id']}")
    if args.state:
        args.state.write_text(json.dumps(state))
    print(
        f"Synced {counts['customers']} customers, {counts['additions']} agreement additions, "
        f"{counts['invoices']} invoices."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
