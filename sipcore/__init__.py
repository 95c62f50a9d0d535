"""sipcore: the gateway's sans-I/O SIP core (RFC 3261 and friends), in the manner of h11.

Bytes in, messages out (:func:`parse_message`, :class:`StreamFramer`); messages in, bytes out
(``Request.serialize``); transaction, dialog and registration state machines that take messages
and the time as inputs and return what to send and when to wake them. No sockets, no event loop,
no asyncio: the gateway's asyncio shell (``gateway.sip``) owns transports and timers. Errors raised
on network input are :class:`SIPError` subclasses carrying the status to answer with.

Its parts: ``syntax`` (messages, headers, URIs, parsing, framing), ``dialogs`` (dialogs, offer/answer,
100rel, session timers, transfer, the requests a UA builds), ``auth`` (digest, both sides) and
``location`` (routing, RFC 3263 server location, redirects) stand on one another in that order only
(``syntax`` below the other three, which are independent: the ``sipcore-parts`` contract); the
transaction and registration machines, ``identity``, the errors and the transition tables sit at the
top. sipcore imports nothing of the gateway and no I/O (the ``pure-cores`` and ``sans-io`` contracts).
"""

from sipcore.auth.digest import Algorithm, Challenge, DigestClient
from sipcore.errors import (
    BadExtension,
    BadRequest,
    DigestError,
    EntityTooLarge,
    MessageTooLarge,
    ParseContext,
    SIPError,
    TransportError,
    UnsupportedURIScheme,
    VersionNotSupported,
)
from sipcore.location.routing import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    Address,
    Target,
    request_target,
    response_address,
    uri_target,
)
from sipcore.registration import RegState
from sipcore.syntax.framing import KeepAlive, StreamFramer
from sipcore.syntax.headers import (
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
from sipcore.syntax.message import (
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
from sipcore.syntax.parser import DEFAULT_LIMITS, Framing, ParserLimits, parse_message
from sipcore.syntax.uri import URI, AbsoluteURI, SipURI, TelURI, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "URI",
    "AbsoluteURI",
    "Address",
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
    "RegState",
    "Request",
    "Response",
    "SIPError",
    "SipURI",
    "StreamFramer",
    "Target",
    "TelURI",
    "TransactionKey",
    "TransportError",
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
    "request_target",
    "response_address",
    "server_transaction_key",
    "uri_target",
]
