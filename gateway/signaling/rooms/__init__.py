"""Rooms of browsers (`/webrtc/signaling/{room}/{peer}`): the relay of offers, answers and candidates
between peers (`core.py`, sans-I/O), the protocols toward the gateway's own peer in rooms with a SIP party
(`media.py`; gateway/runtime implements them), who may create, join and watch a room (`access.py`,
gateway.yaml `rooms.rules`) and the routes on the shared session loop (`endpoint.py`).
It may import the shared signaling modules (errors, events, api_auth, limits, session_loop), the HTTP
API's error body, gateway.config, gateway.identity and aiohttp; never media or SIP directly."""
