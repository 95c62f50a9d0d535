"""Fixtures for tests that use real SIP peers (other test packages may import them the same way)."""

from tests.peers.kamailio import kamailio

__all__ = ["kamailio"]
