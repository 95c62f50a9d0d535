"""The JSON-RPC 2.0 dialect (`/jsonrpc`): framing, batches and errors (`framing.py`) and the methods'
params (`params.py`), both sans-I/O; one peer over the call service (`peer.py`), peers calling peers end
to end (`relay.py`) and the route on the shared session loop (`endpoint.py`). It may import the shared
signaling modules (errors, events, service, api_auth, limits, session_loop), the HTTP API's error body
(http_api.handlers.error_response), gateway.identity and aiohttp; never media or SIP."""
