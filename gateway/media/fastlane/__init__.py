"""The media fast lane: steady RTP forwarded and transcoded by native threads, the compiled engine
``_fastlane`` (its C sources are here: ``_fastlane.c``, the module and the engine type; ``_fastlane_thread.c``,
the thread's rounds; ``_fastlane_media.c``, a packet's work; ``_fastlane_link.c``, a call's link;
``_fastlane_video.c``, the video lanes; ``_stun.c``, ICE consent answers) and its Python side: ``native``
(the boundary with the compiled engine: ``Snapshot``, ``Datagram``, ``arm``), ``engine`` (``EnginePool``,
owned by ``gateway.app``; ``Engine``, one thread; ``FastLink``, one call), ``controller``
(``FastLaneController``: one bridge's link, arming, accounting) and ``video_lanes`` (a call's video). It
may import the rest of ``gateway.media`` (the legs whose sockets it takes over, the paths whose work it
mirrors, the codecs' tables); the private internals it relies on are in ``gateway.media.native_hooks`` and
``gateway.media.webrtc.aiortc_hooks``. Only the bridge, the application and the warm-up import it (the
paths and settings for type hints only, ``codecs.opus_settings`` when a setting changes).

Why: in Python every packet costs an event-loop wake-up plus the bridge's work, ~250 us at one call on
a small VM; the native thread costs a few system calls. Python keeps every decision:

* A ``FastLink`` takes over one call's two sockets (the web leg's nominated ICE socket and the SIP leg's
  RTP socket) once both legs are up and the call is pass-through: asyncio stops reading them and the
  engine thread reads both from then on. Packets go through the same paths as before unless a *lane*
  is armed: for each direction, the bridge arms a lane with what its Python path would do to the next
  packet (source address, SSRC, payload types, timestamp offset, destination). A packet that fits is
  rewritten and sent by the thread, which accounts for it in the lane's *tally*; anything else (STUN, DTLS, RTCP,
  telephone-events, a new SSRC or address, a timestamp jump, a held direction) is queued as a datagram
  and disarms its lane. RTP from the browser is always decrypted by the thread.
* ``drain()`` runs when the thread has queued a datagram it did not forward (an eventfd wakes the loop:
  at once for media and DTLS, within 10 ms for RTCP and STUN, so one wake-up carries many calls') and
  every ``DRAIN_INTERVAL`` seconds: datagrams
  go to the handlers asyncio would have called (aioice's protocol, ``DirectReceiver``, ``RtpEndpoint``).
  The thread accounts for what it forwards itself, as the Python path would (RTCP receive statistics
  per RFC 3550 A.1/A.3/A.8, loss, sender counters, the timestamp mapper's last packet, last arrival,
  latency samples); the bridge copies a *snapshot* into its legs and paths before a datagram of the
  call is handled (RTCP and STUN excepted: they read none of it), before RTCP reports and watchdog decisions,
  and once per ``DRAIN_INTERVAL``: no Python runs per forwarded packet. Then the bridge re-arms (giving
  the engine its state of the source to continue from), unless the call's datagrams were all RTCP or
  STUN (which change no lane), after the whole batch (a re-arm asked for inside it waits: no packet
  overtakes one the batch still holds); a lane armed while packets of its direction wait in the queue
  takes them back and forwards them first, in order, until one it would not take (which disarms it and
  stays for Python with all after it), so a backlog in Python never keeps lanes from arming.
* Transcoding: Opus <-> PCMU/PCMA is done by the thread too (libopus, the copy PyAV bundles; G.711 by
  the same tables as ``transcode``), through 8 kHz PCM in 20 ms frames; other pairs (G.722) stay on
  the Python path, which also handles the first packets of every call until the lanes are armed.
* Output sequence numbers and SRTP belong to the engine while linked: ``DirectSender`` and
  ``RtpEndpoint`` send their own packets (DTMF, transcoded audio) through ``Link.send``, and aiortc's
  libsrtp sessions are replaced by ``SerializedSrtp``, which runs them under the engine's lock.

Without the compiled module (``available()`` False), or without an ``EnginePool`` in the bridge settings
(``media.fast_path: false``), everything stays on the Python path.
"""

from gateway.media.fastlane.engine import EnginePool
from gateway.media.fastlane.native import Datagram, Snapshot, available

__all__ = ["Datagram", "EnginePool", "Snapshot", "available"]
