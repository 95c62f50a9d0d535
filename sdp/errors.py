"""Errors of the sdp package: one base class carrying the SIP status to answer with.

A SIP user agent that receives an SDP body it cannot use answers the request with the status of the
error (RFC 3261 §21.4.1: 400 Bad Request for an unparsable body, RFC 3261 §21.4.26: 488 Not Acceptable
Here when the session description is understood but none of its media can be used).
"""

from __future__ import annotations


class SdpError(Exception):
    """Base class of every error raised by ``sdp``; ``sip_status`` is the SIP response to send."""

    sip_status: int = 500
    # RFC 3261 §20.43 warn-code for a Warning header on the refusal (302 incompatible transport
    # protocol, 304 media type not available, 305 incompatible media format...), when one applies.
    warning: int | None = None
    # The SDP line at fault, by its type and attribute name ("a=setup", "m=audio", "c="), when known:
    # what an API error names besides the request's own field.
    field: str | None = None

    def __init__(
        self,
        message: str,
        *,
        sip_status: int | None = None,
        warning: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if sip_status is not None:
            self.sip_status = sip_status
        if warning is not None:
            self.warning = warning

    def __str__(self) -> str:
        return self.message


class SdpParseError(SdpError):
    """The text is not a valid session description (or a value is not valid SDP); answer 400."""

    sip_status = 400


class SdpUnacceptable(SdpError):
    """The description is valid but none of its media can be used (RFC 3264 §6); answer 488."""

    sip_status = 488
