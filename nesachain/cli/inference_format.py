"""Text forms of inference query results (sessions with their commitments, challenges, payments; verifier
counts)."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["format_result", "format_session", "format_verifier"]


def format_result(name: str, res: dict[str, Any]) -> str:
    if name == "session":
        return format_session(res)
    if name == "sessions":
        return "\n".join(f"{s['id']}\t{s['status']}\t{s['model_id']}\ttokens {s['tokens']}\tpaid {s['paid']}"
                         for s in res["sessions"]) or "(no sessions)"
    if name == "models":
        return "\n".join(f"{m['model_id']}\t{m['architecture']}\t{m['n_blocks']} blocks\t{m['price']}unes/token/block"
                         for m in res["models"]) or "(no models)"
    if name == "verifier_stats":
        return "\n".join(format_verifier(v) for v in res["verifier_stats"]) or "(no validator counted yet)"
    return json.dumps(res, indent=2, sort_keys=True)


def format_verifier(v: dict[str, Any]) -> str:
    w = v["window"]
    return (f"{v['validator']}\tchallenges {v['challenges']}\tagreed {v['agreed']}\tdisagreed {v['disagreed']}\t"
            f"undecided {v['undecided']}\tabstained {v['abstained']}\tmissed {v['missed']}\t"
            f"window: missed {w['missed']} of the last {w['challenges']} (size {w['size']})\t"
            f"rewards {v['rewards']}unes")


def format_session(s: dict[str, Any]) -> str:
    lines = [f"session {s['id']}: {s['status']}  model {s['model_id']}  client {s['client']}",
             f"  tokens {s['tokens']}/{s['max_tokens']}  escrow {s['escrow']}unes  paid {s['paid']}unes  "
             f"fee {s['fee']}unes  refund {s['refund']}unes"]
    for h in s["hops"]:
        state = "revealed" if h["revealed"] else ("committed" if h["commitment"] else "no commitment")
        failed = f"  FAILED: {h['failed']}" if h["failed"] else ""
        stand_in = (f"  stands in for hop {h['stands_in_for']} from token {h['from_token']}"
                    if h.get("stands_in_for", -1) >= 0 else "")
        lines.append(f"  blocks [{h['start']},{h['end']}) {h['miner']}  {state}  steps {h['n_steps']}  "
                     f"tokens {h.get('tokens', s['tokens'])}  paid {h['paid']}unes{stand_in}{failed}")
    for i, c in enumerate(s["challenges"]):
        lines.append(f"  challenge {i}: miner {c['miner']} step {c['step']}  verdicts {len(c['reveals'])}/"
                     f"{len(c['commits'])} revealed  outcome {c['outcome'] or 'pending'}  "
                     f"(match {c['match_power']}, mismatch {c['mismatch_power']})")
    return "\n".join(lines)
