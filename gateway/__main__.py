"""`python -m gateway` is the same as the `sip-webrtc-gateway` command."""

from gateway.cli import main

raise SystemExit(main())
