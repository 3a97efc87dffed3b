"""The pure domain of the connector framework.

Values and rules only: envelopes, channel descriptors, health states and their
transition table, errors and inbound outcomes. Nothing here knows of MQTT, of
threads or of I/O; it imports the standard library and ``returns`` only.
"""

from .envelope import (
    CORRELATION_ID_SIZE,
    DEFAULT_MAX_PAYLOAD_SIZE,
    MAX_PAYLOAD_LIMIT,
    ZERO_CORRELATION_ID,
    ChannelDescriptor,
    DeliveryHandle,
    RecvEnvelope,
    SendOutcome,
    recv_envelope,
    send_outcome,
    validate_correlation_id,
)
from .errors import (
    BackPressure,
    CodecError,
    ConfigurationError,
    ConnectorDown,
    ConnectorError,
    ConnectorTimeout,
    PayloadOverflow,
    StackError,
)
from .health import (
    LEGAL_TRANSITIONS,
    Connecting,
    ConnectorHealth,
    Degraded,
    Down,
    HealthEvent,
    HealthKind,
    IllegalTransition,
    Up,
    is_legal,
    transition,
)
from .inbound import SENT, Dropped, InboundOutcome, Sent
from .results import ok
from .routing import Routing

__all__ = [
    "CORRELATION_ID_SIZE",
    "DEFAULT_MAX_PAYLOAD_SIZE",
    "LEGAL_TRANSITIONS",
    "MAX_PAYLOAD_LIMIT",
    "SENT",
    "ZERO_CORRELATION_ID",
    "BackPressure",
    "ChannelDescriptor",
    "CodecError",
    "ConfigurationError",
    "Connecting",
    "ConnectorDown",
    "ConnectorError",
    "ConnectorHealth",
    "ConnectorTimeout",
    "Degraded",
    "DeliveryHandle",
    "Down",
    "Dropped",
    "HealthEvent",
    "HealthKind",
    "IllegalTransition",
    "InboundOutcome",
    "PayloadOverflow",
    "RecvEnvelope",
    "Routing",
    "SendOutcome",
    "Sent",
    "StackError",
    "Up",
    "is_legal",
    "ok",
    "recv_envelope",
    "send_outcome",
    "transition",
    "validate_correlation_id",
]
