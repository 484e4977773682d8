"""auth params: what a tx must pay and how large it may be, validated."""

from __future__ import annotations

from typing import Any

import pytest

from nesachain.modules.auth.params import Params


@pytest.mark.parametrize(("fields", "message"), [
    ({"min_fee": -1}, "min_fee"),
    ({"min_fee": True}, "min_fee"),
    ({"min_fee": "1000"}, "min_fee"),
    ({"max_tx_bytes": 255}, "max_tx_bytes"),
    ({"max_tx_bytes": 4 * 1024 * 1024 + 1}, "max_tx_bytes"),
    ({"gas": 1}, "unknown auth params"),
])
def test_params_from_dict_invalid_values_raise_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Params.from_dict(fields)


def test_params_round_trip_and_bounds_accepted() -> None:
    for p in (Params(), Params(0, 256), Params(10**9, 4 * 1024 * 1024)):
        assert Params.from_dict(p.to_dict()) == p
