"""Event streams: the delivery outbox published into NATS JetStream, RabbitMQ, Redis Streams.

A broker endpoint is an endpoint like a webhook (same filters, same envelope, same
dead letters); what differs is the way out: its events are appended to a numbered
log per endpoint (`log.py`) in the transaction that made them, and its pump
(`pump.py`, a job) publishes them in order, a batch per round trip, through
`pool.Publishers.publish(endpoint id, url, envelopes)`, which answers one
`Published` or `Failed` per envelope (`publisher.py`). URLs: `targets.py`.
README: Event streams.

This package's `__init__` imports nothing, so that validating a URL does not load
the three broker clients.
"""
