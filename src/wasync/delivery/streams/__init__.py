"""Event streams: the delivery outbox published into NATS JetStream, RabbitMQ, Redis Streams.

A broker endpoint is an endpoint like a webhook (same filters, same envelope, same
jobs table); only the last step differs: `pool.Publishers.publish(endpoint id, url,
envelopes)` publishes a batch over the endpoint's long-lived connection and answers
one `Published` or `Failed` per envelope (`publisher.py`). URLs: `targets.py`.
README: Event streams.

This package's `__init__` imports nothing, so that validating a URL does not load
the three broker clients.
"""
