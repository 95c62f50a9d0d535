"""The transaction layer (RFC 3261 §17, §18): the asyncio shell around ``sipcore.transaction``.

Owns ``layer`` (``TransactionLayer``: transports in, transactions run on the event loop's clock),
``client`` and ``server`` (its two sides), ``tu`` (the boundary with the transaction user, the user
agent), ``scheduler`` (the clock and timers it runs on), ``stats`` (what it counts for metrics, and its
rate-limited warnings) and ``policy`` (which sources may send requests: toll-fraud protection). It may
import ``sipcore``, ``gateway.config``, the transports below it and asyncio; never the user agent above
it (the ``sip-parts`` contract).
"""
