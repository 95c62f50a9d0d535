"""Operating the gateway: metrics (Prometheus), readiness, call records, call ids on log lines.

See docs/operations.md. Nothing here is on a packet's path: collectors read the gateway's state when
scraped, call records are made once per call.
"""
