"""Test peers: the other ends of a call, for tests, examples and benchmarks (not part of the gateway).

- `peers.phone.DeskPhone`: a real pjsua2 SIP desk phone (`peers.deskphone`) in its own process.
- `peers.sipp.Sipp`, `peers.kamailio.running_kamailio`: sipp scenarios and a Kamailio registrar/proxy.
- `peers.baresip.Baresip`: baresip, a second SIP phone (DTLS-SRTP, SDES, ICE), driven over ctrl_tcp.
- `peers.webpeer.WebPeer`: an aiortc peer on 127.0.0.1 standing in for a browser tab.
- `peers.web_user.WebUser`: a web user on the gateway's WebSocket protocol.
- `peers.audio`: tones, G.711, a Goertzel detector, WAV reading, and `RtpTonePeer`, a plain RTP phone.
- `peers.ports.free_port`, `peers.binaries.require_binary`: the plumbing they share.

Installed editable by `make run` and `make test` (peers/pyproject.toml), so `import peers` works
from any directory.
"""
