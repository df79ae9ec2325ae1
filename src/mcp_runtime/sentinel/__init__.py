"""Sentinel analytics: the event schema (`events`), the durable spool (`spool`) and the gateway's
batching emitter (`emitter`). Import the submodules directly; this package imports nothing eagerly."""
