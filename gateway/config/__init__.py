"""Typed configuration: gateway.yaml read into frozen dataclasses, overridden by `GATEWAY_*` variables.

The schema and values are pure; reading YAML is in `gateway.config.loader`:

config = load_config("gateway.yaml", os.environ)   # ConfigError lists every problem found
config.sip.listen[0].port, config.media.public_address, config.users[0].pbx_auth.password.reveal()
"""

from gateway.config.dns import DnsSection
from gateway.config.errors import ConfigError, ConfigFileError, InvalidValue
from gateway.config.schema import (
    CallsSection,
    CodecsSection,
    Config,
    HttpSection,
    HttpTls,
    IceSection,
    IceServer,
    LoggingSection,
    MediaSection,
    PbxSection,
    RtpPorts,
    SipListen,
    SipSection,
    SipTls,
    TurnRestSection,
    WebAuthSection,
)
from gateway.config.secret import Secret, SecretSource
from gateway.config.users import PbxAuth, UserConfig
from gateway.config.values import (
    Codec,
    DtmfMode,
    HostPort,
    LogFormat,
    LogLevel,
    OpusFec,
    RealtimeText,
    SrtpMode,
    Transport,
)
from gateway.identity.model import WebAuthMode

__all__ = [
    "CallsSection",
    "Codec",
    "CodecsSection",
    "Config",
    "ConfigError",
    "ConfigFileError",
    "DnsSection",
    "DtmfMode",
    "HostPort",
    "HttpSection",
    "HttpTls",
    "IceSection",
    "IceServer",
    "InvalidValue",
    "LogFormat",
    "LogLevel",
    "LoggingSection",
    "MediaSection",
    "OpusFec",
    "PbxAuth",
    "PbxSection",
    "RealtimeText",
    "RtpPorts",
    "Secret",
    "SecretSource",
    "SipListen",
    "SipSection",
    "SipTls",
    "SrtpMode",
    "Transport",
    "TurnRestSection",
    "UserConfig",
    "WebAuthMode",
    "WebAuthSection",
]
