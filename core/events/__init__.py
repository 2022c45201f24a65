"""What the service tells the outside world: events (for the SSE stream and webhooks),
in-app notifications and webhook subscriptions with their delivery log."""
