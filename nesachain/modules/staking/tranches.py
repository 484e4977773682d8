"""A delegation's tranches: its shares by the height they were bonded at, so that a slash for an
infraction at height H takes only the stake that was bonded at H.

A delegation is a short list of ``(height, shares)`` sorted by height (the block whose tx bonded them; 0
for genesis). Shares bonded at a height <= H were at stake at H; later ones were not, and a slash for H
leaves them untouched. The list holds at most ``MAX_TRANCHES``: one more merges the two newest into the
older height, which can only make the delegator's own stake count as bonded earlier (slashable for more
infractions), never later, so merging never lets stake escape a slash. An undelegation takes the newest
shares first, and its unbonding entry remembers the oldest height it took from (its ``bonded_height``):
an entry created at or after H is slashed for H if that height is <= H.

Pure functions over integers; the keeper stores the lists.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_TRANCHES", "Tranches", "add", "at_stake", "check", "cut_at_stake", "remove_newest", "total"]

MAX_TRANCHES = 8
Tranches = tuple[tuple[int, int], ...]  # ((height, shares), …), heights increasing, shares > 0


def total(tranches: Tranches) -> int:
    return sum(s for _, s in tranches)


def at_stake(tranches: Tranches, height: int) -> int:
    """Shares bonded at or before ``height``."""
    return sum(s for h, s in tranches if h <= height)


def add(tranches: Tranches, height: int, shares: int) -> Tranches:
    """``shares`` bonded at ``height`` (not below the newest tranche's height)."""
    out = list(tranches)
    if out and out[-1][0] >= height:
        out[-1] = (out[-1][0], out[-1][1] + shares)
    else:
        out.append((height, shares))
    if len(out) > MAX_TRANCHES:
        (h_old, s_old), (_, s_new) = out[-2], out[-1]
        out[-2:] = [(h_old, s_old + s_new)]
    return tuple(out)


def remove_newest(tranches: Tranches, shares: int) -> tuple[Tranches, int]:
    """Take ``shares`` (at most the total) from the newest tranches first: the tranches left and the
    height of the oldest tranche taken from (the unbonding entry's ``bonded_height``)."""
    out = list(tranches)
    oldest = out[-1][0] if out else 0
    left = shares
    while left > 0:
        h, s = out[-1]
        oldest = h
        if s > left:
            out[-1] = (h, s - left)
            left = 0
        else:
            out.pop()
            left -= s
    return tuple(out), oldest


def cut_at_stake(tranches: Tranches, height: int, shares: int) -> Tranches:
    """Take ``shares`` (at most ``at_stake(tranches, height)``) from the tranches bonded at or before
    ``height``, the newest of those first; later tranches stay whole."""
    older = tuple(t for t in tranches if t[0] <= height)
    later = tuple(t for t in tranches if t[0] > height)
    kept, _ = remove_newest(older, shares)
    return kept + later


def check(raw: Sequence[object], shares: int) -> Tranches:
    """Tranches read from a genesis file: ``[[height, shares], …]``, heights strictly increasing, shares
    positive, at most ``MAX_TRANCHES``, adding up to ``shares``. Raises ValueError."""
    if not isinstance(raw, list | tuple) or not 0 < len(raw) <= MAX_TRANCHES:
        raise ValueError(f"tranches must be a list of 1 to {MAX_TRANCHES} [height, shares] pairs")
    out: list[tuple[int, int]] = []
    for pair in raw:
        if (not isinstance(pair, list | tuple) or len(pair) != 2
                or any(isinstance(x, bool) or not isinstance(x, int) for x in pair)):
            raise ValueError("each tranche must be [height, shares], both integers")
        h, s = pair
        if h < 0 or s <= 0 or (out and h <= out[-1][0]):
            raise ValueError("tranche heights must increase from 0 and their shares be positive")
        out.append((h, s))
    if sum(s for _, s in out) != shares:
        raise ValueError(f"tranches add up to {sum(s for _, s in out)} shares, the delegation holds {shares}")
    return tuple(out)
