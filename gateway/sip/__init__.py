"""The gateway's SIP user agent.

Its core is sans-I/O in the manner of h11: bytes in, messages out (:func:`parse_message`,
:class:`StreamFramer`), messages in, bytes out (``Request.serialize``); no sockets, no event
loop. Errors raised on network input are :class:`SIPError` subclasses carrying the status to
answer with.
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
from gateway.sip.parser import DEFAULT_LIMITS, Framing, ParserLimits, parse_message
from gateway.sip.uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "URI",
    "AbsoluteURI",
    "Algorithm",
    "BadExtension",
    "BadRequest",
    "CSeq",
    "Challenge",
    "DigestClient",
    "DigestError",
    "EntityTooLarge",
    "Framing",
    "Headers",
    "KeepAlive",
    "KeyKind",
    "Message",
    "MessageTooLarge",
    "NameAddr",
    "ParseContext",
    "ParserLimits",
    "Request",
    "Response",
    "SIPError",
    "SipURI",
    "StreamFramer",
    "TelURI",
    "TransactionKey",
    "UnsupportedURIScheme",
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
    "server_transaction_key",
]
