"""Routes named on the command line: parsing, alternates, and coverage of the blocks
(``nesachain.client.route``)."""

from __future__ import annotations

import pytest

from nesachain.client.errors import RouteError
from nesachain.client.route import parse_route


def test_route_parsing_and_coverage() -> None:
    r = parse_route("127.0.0.1:1@0:2,127.0.0.1:2@2:3", ["127.0.0.1:3@2:3"], "fp16")
    assert [h.url for h in r.hops] == ["ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws"]
    assert [p.url for p in r.hops[1].alternates] == ["ws://127.0.0.1:3/ws"]
    r.validate(3)
    with pytest.raises(RouteError):
        r.validate(4)
    with pytest.raises(RouteError):
        parse_route("127.0.0.1:1@0:2", ["127.0.0.1:3@1:2"])
    assert parse_route("[::1]:7001@0:1,ws://h:2/ws@1:2").hops[0].url == "ws://[::1]:7001/ws"
    for bad in (":::@0:1", "@0:1", "127.0.0.1@0:1", "127.0.0.1:0@0:1", "127.0.0.1:99999@0:1", "h:x@0:1"):
        with pytest.raises(RouteError, match="host:port"):
            parse_route(bad)
    with pytest.raises(RouteError, match="host:port"):
        parse_route("127.0.0.1:1@0:2", ["127.0.0.1@0:2"])  # an alternate too
