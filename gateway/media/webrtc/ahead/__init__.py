"""What the web leg has ready before aiortc would make it (issue 64: answer first, build later).

``web_answer`` writes our answer to a browser's first audio offer, ``web_offer`` our first offer to a
browser (a phone's call to a web user), each on the ICE socket pool's sockets with aiortc's own
negotiation and writer; the web leg (``webrtc_leg``) gives it at once, has aiortc take its steps after,
and fails if what aiortc would have written differs. ``peer_pool`` makes the web legs' peer connections
before their calls. These modules import aiortc and ``aiortc_hooks``, never the web leg.
"""
