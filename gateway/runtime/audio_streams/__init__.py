"""Live audio streams to apps (issue 37 item 4), the runtime's part: ``service`` (``AudioStreams``: which
calls stream, by policy when answered or when asked by the admin API, /ws or the HTTP API; each stream's
20 ms clock; its end with the call). The bridge's tap and the frames are gateway/media/streaming's, the
WebSocket gateway/signaling/audio_stream's.
"""
