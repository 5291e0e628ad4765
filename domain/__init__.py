"""Domain logic shared by the HTTP API and the workers: orders and their state machine, the ledger,
the payment gateway, payouts and notifications.

Runs inside the caller's transaction and knows nothing of HTTP or of the background loops: it may
import `hub` (outbox, settings, clock, db) but never `rest` or `workers`, which both import it."""
