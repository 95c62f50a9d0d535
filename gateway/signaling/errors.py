"""The signaling package's errors: each says what the browser must be told.

A `SignalingError` becomes an `error {code, message, field}` message on the WebSocket (the socket stays
open) or an HTTP error body `{error, code, session_id}` with `http_status`. `close_code` is set only on
errors after which the WebSocket is closed (RFC 6455 §7.4.1 codes, 4000-4999 for our own).
"""

from __future__ import annotations


class SignalingError(Exception):
    """Base error: `code` is the machine-readable error code of the protocol (docs/signaling.md)."""

    code: str = "internal_error"
    http_status: int = 500
    close_code: int | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status

    def __str__(self) -> str:
        return f"{self.message} (field {self.field!r})" if self.field else self.message

    def to_json(self) -> dict[str, object]:
        """The body of an `error` message (without `type` and `id`)."""
        return {"code": self.code, "message": self.message, "field": self.field}


class BadRequest(SignalingError):
    """Not JSON, not an object, or a field missing or of the wrong kind; `field` names it."""

    code = "bad_request"
    http_status = 400


class BadOffer(BadRequest):
    """A browser's offer the gateway cannot take, found before anything is dialled (field `sdp`, the SDP
    line in the message); `sip_status` for SIP over WebSocket: 400 not SDP, 488 unusable (RFC 3261
    §21.4.1, §21.4.26)."""

    def __init__(self, message: str, *, sip_status: int = 488) -> None:
        super().__init__(message, field="sdp")
        self.sip_status = sip_status


class UnknownType(BadRequest):
    """A message whose `type` the protocol does not know."""

    code = "unknown_type"


class TooLarge(BadRequest):
    """A message above the size limit."""

    code = "too_large"
    http_status = 413


class Unauthorized(SignalingError):
    """Not logged in yet, bad credentials, or a bad or expired session token."""

    code = "unauthorized"
    http_status = 401


class LoginTimeout(Unauthorized):
    """No successful login within the allowed time: the socket is closed after this error."""

    code = "login_timeout"
    http_status = 408
    close_code = 4008


class Forbidden(SignalingError):
    """Logged in, but not allowed (a destination the user may not call, another user's call)."""

    code = "forbidden"
    http_status = 403


class NotFound(SignalingError):
    """No such call or session."""

    code = "not_found"
    http_status = 404


class Conflict(SignalingError):
    """The request does not fit the state (already logged in, call not ringing, too many sessions)."""

    code = "conflict"
    http_status = 409


class TooManySessions(Conflict):
    """The user already has the maximum number of open sessions."""

    code = "too_many_sessions"


class RateLimited(SignalingError):
    """More messages than the per-connection rate allows: this one was not processed."""

    code = "rate_limited"
    http_status = 429


class Timeout(SignalingError):
    """The call layer did not answer in time (HTTP 408)."""

    code = "timeout"
    http_status = 408


class ServiceError(SignalingError):
    """An error the call layer raises to refuse a request; it chooses the code and the HTTP status.

    raise ServiceError("the line is busy", code="busy", field="to", http_status=409)
    """

    code = "service_error"
    http_status = 400
