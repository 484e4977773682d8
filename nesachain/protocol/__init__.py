"""What two roles must agree on, in one place: the client, the miner's server, the miner's chain agents
and the verifier all take these from here and from nowhere else.

    messages    the WebSocket messages (``encode_message``/``decode_message``) and their error codes
    frames      tensor frames: one format for every tensor (``encode_tensor``/``decode_tensor``)
    sessions    session names on miners (``chain_session_name``, ``hop_session_name``)
    steplog     step digests, step-log roots, the step log's HTTP endpoints, and reading them back strictly
    fetch       one HTTP GET of another party's server, bounded in time and bytes
    endpoints   a miner's ``host:port`` and its WebSocket and HTTP URLs
    errors      ``ProtocolError`` > ``WireError``, ``StepError``, ``StepLogFetchError`` > …

The protocol is described for readers in ``docs/protocol.md``. This package imports nothing of any role.
"""

from __future__ import annotations

from nesachain.protocol.endpoints import EndpointError, check_endpoint, http_url, ws_url
from nesachain.protocol.errors import ProtocolError, StepError, WireError
from nesachain.protocol.messages import ErrorCode, decode_message, encode_message, error_message
from nesachain.protocol.sessions import chain_session_base, chain_session_name, hop_session_name, session_name
from nesachain.protocol.steplog import bundle_digest, step_digest, step_log_leaves, step_log_root

__all__ = [
    "EndpointError",
    "ErrorCode",
    "ProtocolError",
    "StepError",
    "WireError",
    "bundle_digest",
    "chain_session_base",
    "chain_session_name",
    "check_endpoint",
    "decode_message",
    "encode_message",
    "error_message",
    "hop_session_name",
    "http_url",
    "session_name",
    "step_digest",
    "step_log_leaves",
    "step_log_root",
    "ws_url",
]
