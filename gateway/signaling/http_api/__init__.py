"""The HTTP offer/answer dialect (RustPBX's API): request bodies decoded and checked (`offer_protocol.py`,
sans-I/O), the handlers of `/webrtc/offer`, `/webrtc/ice-candidate`, `/webrtc/close`, `/iceservers`
(`handlers.py`), a session's progress for polling and server-sent events (`progress.py`, `sessions.py`)
and the OpenAPI document of every HTTP route (`openapi.py`). It may import the shared signaling modules
(errors, events, service, api_auth, limits), gateway.identity and aiohttp; never another dialect's
package, media or SIP."""
