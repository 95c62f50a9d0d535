"""SIP-to-WebRTC gateway: browser softphones reach PBXs, SIP phones reach web users."""

__version__ = "0.1.0"
