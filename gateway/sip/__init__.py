"""The gateway's SIP user agent.

Its core is sans-I/O in the manner of h11: bytes in, messages out (:func:`parse_message`,
:class:`StreamFramer`), messages in, bytes out (``Request.serialize``); no sockets, no event
loop. Errors raised on network input are :class:`SIPError` subclasses carrying the status to
answer with.

On top of the transaction layer, :class:`UserAgent` is what the call layer uses: it places
calls (:class:`OutgoingCall`), delivers incoming ones (:class:`IncomingCall`), reports what
happens to each as event dataclasses, and keeps the configured AORs registered.
"""

from gateway.sip.digest import Algorithm, Challenge, DigestClient
from gateway.sip.errors import (
    BadExtension,
    BadRequest,
    DigestError,
    EntityTooLarge,
    MessageTooLarge,
    ParseContext,
    SIPError,
    UnsupportedURIScheme,
    VersionNotSupported,
)
from gateway.sip.framing import KeepAlive, StreamFramer
from gateway.sip.headers import (
    CSeq,
    NameAddr,
    Via,
    new_branch,
    new_call_id,
    new_tag,
    parse_cseq,
    parse_name_addr,
    parse_via,
)
from gateway.sip.incoming import IncomingCall
from gateway.sip.message import (
    Headers,
    KeyKind,
    Message,
    Request,
    Response,
    TransactionKey,
    add_received,
    client_transaction_key,
    error_response,
    make_response,
    server_transaction_key,
)
from gateway.sip.outgoing import OutgoingCall
from gateway.sip.parser import DEFAULT_LIMITS, Framing, ParserLimits, parse_message
from gateway.sip.registrar_client import (
    RegistrationChanged,
    RegistrationClient,
    RegistrationSpec,
    registrations_for_users,
)
from gateway.sip.registration import RegState
from gateway.sip.ua import Listen, UASettings, UAState, UserAgent
from gateway.sip.ua_calls import Call, CallError, CallState
from gateway.sip.ua_events import (
    Answered,
    Bye,
    CallEvent,
    Cancelled,
    Confirmed,
    EarlyMedia,
    Failed,
    InfoReceived,
    Provisional,
    ReinviteReceived,
    ReinviteResult,
    set_direction,
)
from gateway.sip.uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "URI",
    "AbsoluteURI",
    "Algorithm",
    "Answered",
    "BadExtension",
    "BadRequest",
    "Bye",
    "CSeq",
    "Call",
    "CallError",
    "CallEvent",
    "CallState",
    "Cancelled",
    "Challenge",
    "Confirmed",
    "DigestClient",
    "DigestError",
    "EarlyMedia",
    "EntityTooLarge",
    "Failed",
    "Framing",
    "Headers",
    "IncomingCall",
    "InfoReceived",
    "KeepAlive",
    "KeyKind",
    "Listen",
    "Message",
    "MessageTooLarge",
    "NameAddr",
    "OutgoingCall",
    "ParseContext",
    "ParserLimits",
    "Provisional",
    "RegState",
    "RegistrationChanged",
    "RegistrationClient",
    "RegistrationSpec",
    "ReinviteReceived",
    "ReinviteResult",
    "Request",
    "Response",
    "SIPError",
    "SipURI",
    "StreamFramer",
    "TelURI",
    "TransactionKey",
    "UASettings",
    "UAState",
    "UnsupportedURIScheme",
    "UserAgent",
    "VersionNotSupported",
    "Via",
    "add_received",
    "client_transaction_key",
    "error_response",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "parse_via",
    "registrations_for_users",
    "server_transaction_key",
    "set_direction",
]
