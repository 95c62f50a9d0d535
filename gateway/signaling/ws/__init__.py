"""The JSON WebSocket dialect (`/ws`) the softphone page speaks: its requests (`protocol.py`, sans-I/O),
one connection's logic (`connection.py`: login, dispatch to the call service, `Session`), presence pushed
to logged-in sessions (`presence_feed.py`), the contacts list (`contacts.py`) and the route on the shared
session loop (`endpoint.py`). It may import the shared signaling modules (events, errors, limits,
service, tokens, session_loop), gateway.identity and aiohttp; never another dialect's package, media or
SIP."""
