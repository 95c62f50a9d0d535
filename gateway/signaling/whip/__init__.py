"""WHIP and WHEP over HTTP: ingest a browser's or encoder's WebRTC into a call (`whip.py`, RFC 9725) and
play back a room's mix or a call's audio (`whep.py`; `call_playback.py` is the boundary that
gateway/runtime implements). It may import the shared signaling modules, the HTTP API's handlers (error
body, credentials), the rooms' id check and aiohttp; never media or SIP directly."""
