"""Live audio streams to apps (issue 37 item 4), the network side: ``client`` (``StreamSocket``, one
stream's WebSocket to the app: connect, send, receive, reconnect or give up) and ``routes`` (start and
stop a call's stream on the admin REST API and the HTTP API). It imports aiohttp and the signaling's
errors and admin guard; the streams themselves (policy, the bridge's tap, the clock) are the runtime's
(gateway/runtime/audio_streams/), the PCM and frames the media package's (gateway/media/streaming/).
"""
