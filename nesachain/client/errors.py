"""Errors of the inference client.

    NesaError
    └── ClientError
        ├── RouteError          a route is malformed, does not cover the model, or has no live miner left
        │   └── NoRouteError    no set of the chain's miners covers every block of the model
        └── MinerUnavailable    a miner could not be reached, closed the connection, or did not answer in time

A miner's refusal of a request is ``nesachain.protocol.StepError``.
"""

from __future__ import annotations

from nesachain.errors import NesaError

__all__ = ["ClientError", "MinerUnavailable", "NoRouteError", "RouteError"]


class ClientError(NesaError):
    """Root of the errors raised by nesachain.client."""


class RouteError(ClientError):
    """A route is malformed, does not cover the model, or has no usable miner left for a block range."""


class NoRouteError(RouteError):
    """No set of candidate miners covers every block of the model."""


class MinerUnavailable(ClientError):
    """The miner could not be reached, closed the connection, or did not answer in time."""
