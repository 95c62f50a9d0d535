"""Live audio streams to apps (issue 37 item 4), sans-I/O: each leg's audio decoded to PCM at the stream's
rate, the two put side by side every 20 ms as the frames sent to the app, and the app's own audio mixed
into what the bridge forwards.

Owns ``pcm`` (sample-rate conversion and mixing of 16-bit PCM), ``leg_audio`` (one leg's payloads to PCM,
and back with the app's audio mixed in), ``frames`` (the stream's 20 ms frames: the legs' queues, the
app's audio waiting, the JSON control messages) and ``tap`` (``StreamTap``, the bridge's
``AudioFilter``). It may import the codecs package, ``rtp.packet``, ``rtp.red`` and the media package's
``errors`` and ``events``; never aiortc, a leg, the bridge or the fast lane. The sockets, the clock and
the policy are the runtime's (gateway/runtime/audio_streams/).
"""
