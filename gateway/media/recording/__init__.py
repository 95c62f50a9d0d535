"""Call recording (issue 37 item 3): both legs' audio decoded to PCM and written as one stereo file.

Owns ``timeline`` (sans-I/O: the recording's states and the two channels placed on one clock, with
silence for gaps), ``decode`` (a leg's RTP payloads to PCM at the recording's rate), ``writer`` (a
thread that writes the WAV or Ogg/Opus file and its JSON sidecar, so no call waits on a disk),
``recorder`` (one call's recording, fed by the bridge), and ``siprec_rtp`` (its two legs as PCMU RTP
to a SIPREC recording server). It may import PyAV, the codecs package and the
media package's ``errors``; never aiortc, a leg, the bridge or the fast lane. A recorded call's audio
comes through Python: the bridge keeps the fast lane unlinked while a recording is on (docs/media.md).
"""
