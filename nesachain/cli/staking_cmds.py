"""`nesad tx staking …`, `nesad tx miner …`, `nesad query staking …`, `nesad query miner …`.

Registered after tx_cmds and query_cmds: these add their groups under the existing `tx` and
`query` commands.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from nesachain.cli.common import add_client_options, add_keyring_options, emit, keyring_from, rpc_from, subcommands
from nesachain.cli.tx_cmds import add_tx_options, broadcast, parse_amount, resolve_address
from nesachain.errors import ConfigError, RPCError
from nesachain.modules.staking.msgs import (
    MsgCreateValidator,
    MsgDelegate,
    MsgMinerHeartbeat,
    MsgRegisterMiner,
    MsgUnbondMiner,
    MsgUndelegate,
    MsgUnjail,
    MsgUpdateMiner,
    miner_pop_bytes,
    validator_pop_bytes,
)
from nesachain.wallet import queries
from nesachain.wallet.txs import check_msgs

__all__ = ["consensus_key_from", "consensus_proof", "parse_blocks", "register"]


def _b64(text: object, what: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the {what} is not base64") from None
    if len(raw) != size:
        raise ConfigError(f"the {what} has {len(raw)} bytes; it must have {size}")
    return raw


def consensus_key_from(key_file: str) -> SigningKey:
    """The node's ed25519 consensus key, from a CometBFT priv_validator_key.json (its private key is
    base64 of seed ‖ public key)."""
    try:
        doc = json.loads(Path(key_file).read_text())
        priv, pub = doc["priv_key"], doc["pub_key"]
        kinds = (priv.get("type", ""), pub.get("type", ""))
        priv_text, pub_text = priv["value"], pub["value"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot read the consensus key from {key_file}: {exc}") from None
    if kinds != ("tendermint/PrivKeyEd25519", "tendermint/PubKeyEd25519"):
        raise ConfigError(f"{key_file} holds {kinds[0]!r} keys; nesachain validators use ed25519")
    raw = _b64(priv_text, "consensus private key", 64)
    key = SigningKey(raw[:32])
    if bytes(key.verify_key) != raw[32:] or bytes(key.verify_key) != _b64(pub_text, "consensus pubkey", 32):
        raise ConfigError(f"{key_file}: the private key does not match its public key")
    return key


def consensus_proof(pubkey: str | None, pop: str | None, key_file: str | None, chain_id: str,
                    operator: str) -> tuple[bytes, bytes]:
    """The consensus pubkey and its proof of possession (a signature over the chain id and the operator):
    signed here with the key of a priv_validator_key.json, or given as base64 (``--pubkey`` and ``--pop``,
    for a key kept elsewhere, e.g. by a remote signer)."""
    if key_file is not None:
        if pubkey is not None or pop is not None:
            raise ConfigError("give either --priv-validator-key, or --pubkey with --pop, not both")
        key = consensus_key_from(key_file)
        return bytes(key.verify_key), bytes(key.sign(validator_pop_bytes(chain_id, operator)).signature)
    if pubkey is None or pop is None:
        raise ConfigError("give --priv-validator-key (path to the node's JSON file), or --pubkey and --pop "
                          "(base64 of the consensus key's signature; see `nesad tx staking pop-bytes`)")
    return _b64(pubkey, "consensus pubkey", 32), _b64(pop, "proof of possession", 64)


def parse_blocks(text: str) -> tuple[int, int]:
    """``"0:10"`` -> (0, 10): the half-open range [start, end)."""
    start, sep, end = text.partition(":")
    if not sep or not start.isdigit() or not end.isdigit():
        raise ConfigError(f"blocks {text!r} must look like START:END, e.g. 0:10 for blocks 0..9")
    return int(start), int(end)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tx = subcommands(sub, "tx")
    query = subcommands(sub, "query")

    # tx staking
    st = tx.add_parser("staking", help="validators and delegations").add_subparsers(dest="staking_cmd", required=True)
    p = st.add_parser("create-validator", help="bond stake behind a node's consensus key")
    p.add_argument("from_key", help="operator key in the keyring (self-bonds, later unjails)")
    p.add_argument("--amount", required=True, help="self-bond in unes")
    p.add_argument("--moniker", required=True)
    p.add_argument("--priv-validator-key",
                   help="path to the node's config/priv_validator_key.json (signs the proof of possession)")
    p.add_argument("--pubkey", help="consensus public key, base64 (with --pop, for a key kept elsewhere)")
    p.add_argument("--pop", help="base64 signature by the consensus key over `nesad tx staking pop-bytes`")
    add_tx_options(p)
    p.set_defaults(func=_create_validator)
    p = st.add_parser("pop-bytes", help="what a consensus key kept elsewhere signs for create-validator (hex)")
    p.add_argument("operator", help="operator address or key name")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_pop_bytes)
    for name, fn, what in (("delegate", _delegate, "bond unes to a validator"),
                           ("undelegate", _undelegate, "unbond unes (returned after the unbonding period)")):
        p = st.add_parser(name, help=what)
        p.add_argument("from_key", help="delegator key in the keyring")
        p.add_argument("validator", help="the validator's operator address or key name")
        p.add_argument("amount", help="unes")
        add_tx_options(p)
        p.set_defaults(func=fn)
    p = st.add_parser("unjail", help="return a jailed validator to the set after its jail period")
    p.add_argument("from_key", help="operator key")
    add_tx_options(p)
    p.set_defaults(func=_unjail)

    # tx miner
    mt = tx.add_parser("miner", help="miner registration").add_subparsers(dest="miner_cmd", required=True)
    p = mt.add_parser("register", help="bond stake and register a miner key for a model's blocks")
    p.add_argument("from_key", help="owner key in the keyring (bonds and signs)")
    p.add_argument("--miner-key", required=True, help="the miner's own key in the keyring (not the owner's)")
    p.add_argument("--endpoint", required=True, help="host:port clients reach the miner at")
    p.add_argument("--bond", required=True, help="unes")
    p.add_argument("--model", required=True, help="model id")
    p.add_argument("--blocks", required=True, help="START:END, the blocks [START, END) it serves")
    p.add_argument("--memory-mb", type=int, required=True)
    p.add_argument("--throughput", type=int, required=True, help="milli forward passes per second per block")
    add_tx_options(p)
    p.set_defaults(func=_register_miner)
    p = mt.add_parser("update", help="move blocks or change endpoint or declared capacity")
    p.add_argument("from_key", help="owner key")
    p.add_argument("miner", help="miner address or key name")
    p.add_argument("--endpoint")
    p.add_argument("--blocks", help="START:END")
    p.add_argument("--memory-mb", type=int)
    p.add_argument("--throughput", type=int)
    add_tx_options(p)
    p.set_defaults(func=_update_miner)
    for name, fn, what in (("heartbeat", _heartbeat, "tell the chain the miner is alive"),
                           ("unbond", _unbond_miner, "stop serving; the bond returns after the unbonding period")):
        p = mt.add_parser(name, help=what)
        p.add_argument("from_key", help="owner key")
        p.add_argument("miner", help="miner address or key name")
        add_tx_options(p)
        p.set_defaults(func=fn)

    # query staking
    qs = query.add_parser("staking", help="validators, delegations, params").add_subparsers(
        dest="staking_query", required=True)
    p = qs.add_parser("validators", help="all validators, most tokens first")
    p.add_argument("--status", choices=("bonded", "unbonded", "jailed", "tombstoned"))
    add_client_options(p)
    p.set_defaults(func=_validators)
    p = qs.add_parser("validator", help="one validator by operator address, key name or consensus address")
    p.add_argument("address")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_validator)
    p = qs.add_parser("delegations", help="a delegator's delegations (or, with --validator, a validator's)")
    p.add_argument("delegator", nargs="?", help="address or key name")
    p.add_argument("--validator", help="list the delegations to this validator instead")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_delegations)
    p = qs.add_parser("unbonding", help="unbonding entries (of a delegator, or all)")
    p.add_argument("delegator", nargs="?")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_unbonding)
    for name, fn, what in (("params", _params, "staking and slashing params"),
                           ("pool", _pool, "where every token is: balances, bonded, unbonding, miner bonds")):
        p = qs.add_parser(name, help=what)
        add_client_options(p)
        p.set_defaults(func=fn)

    # query miner
    qm = query.add_parser("miner", help="registered miners").add_subparsers(dest="miner_query", required=True)
    p = qm.add_parser("list", help="miners, optionally of one model or status")
    p.add_argument("--model")
    p.add_argument("--status", choices=("active", "inactive", "unbonding"))
    add_client_options(p)
    p.set_defaults(func=_miners)
    p = qm.add_parser("show", help="one miner")
    p.add_argument("miner", help="miner address or key name")
    add_client_options(p)
    add_keyring_options(p)
    p.set_defaults(func=_miner)


# tx handlers --------------------------------------------------------------------------------------
def _create_validator(args: argparse.Namespace) -> int:
    operator = resolve_address(args, args.from_key)
    amount = parse_amount(args.amount)
    consensus_proof(args.pubkey, args.pop, args.priv_validator_key, "", operator)  # files and flags, before the node
    args.chain_id = args.chain_id or rpc_from(args).chain_id()  # the proof of possession signs it
    pubkey, pop = consensus_proof(args.pubkey, args.pop, args.priv_validator_key, args.chain_id, operator)
    return broadcast(args, args.from_key, [MsgCreateValidator(operator, pubkey, args.moniker, amount, pop)])


def _pop_bytes(args: argparse.Namespace) -> int:
    operator = resolve_address(args, args.operator)
    chain_id = args.chain_id or rpc_from(args).chain_id()
    data = validator_pop_bytes(chain_id, operator)
    emit(args, {"chain_id": chain_id, "operator": operator, "sign_bytes_hex": data.hex()}, data.hex())
    return 0


def _delegate(args: argparse.Namespace) -> int:
    msg = MsgDelegate(resolve_address(args, args.from_key), resolve_address(args, args.validator),
                      parse_amount(args.amount))
    return broadcast(args, args.from_key, [msg])


def _undelegate(args: argparse.Namespace) -> int:
    msg = MsgUndelegate(resolve_address(args, args.from_key), resolve_address(args, args.validator),
                        parse_amount(args.amount))
    return broadcast(args, args.from_key, [msg])


def _unjail(args: argparse.Namespace) -> int:
    return broadcast(args, args.from_key, [MsgUnjail(resolve_address(args, args.from_key))])


def _register_miner(args: argparse.Namespace) -> int:
    owner = resolve_address(args, args.from_key)
    miner = keyring_from(args).signing_key(args.miner_key)
    start, end = parse_blocks(args.blocks)
    msg = MsgRegisterMiner(owner, bytes(miner.verify_key), bytes(64), args.endpoint, parse_amount(args.bond),
                           args.model, start, end, args.memory_mb, args.throughput)
    check_msgs([msg])  # before the node is asked for the chain id the proof of possession signs
    args.chain_id = args.chain_id or rpc_from(args).chain_id()
    pop = bytes(miner.sign(miner_pop_bytes(args.chain_id, owner)).signature)
    return broadcast(args, args.from_key, [replace(msg, pop=pop)])


def _update_miner(args: argparse.Namespace) -> int:
    miner = resolve_address(args, args.miner)
    given: dict[str, Any] = {"endpoint": args.endpoint, "memory_mb": args.memory_mb, "throughput": args.throughput}
    if args.blocks:
        given["block_start"], given["block_end"] = parse_blocks(args.blocks)
    # what was given is checked before the node is asked for the rest (valid stand-ins fill the gaps)
    stand_in: dict[str, Any] = {"endpoint": "127.0.0.1:1", "block_start": 0, "block_end": 1, "memory_mb": 1,
                                "throughput": 1}
    owner = resolve_address(args, args.from_key)
    check_msgs([MsgUpdateMiner(owner, miner, **{k: given[k] if given.get(k) is not None else v
                                                for k, v in stand_in.items()})])
    current: dict[str, Any] = {}
    if any(given.get(k) is None for k in stand_in):
        found = queries.miner(rpc_from(args), miner)
        if found is None:
            raise ConfigError(f"miner {miner} is not registered: give every field, or register it first")
        current = found
    fields = {k: given[k] if given.get(k) is not None else current[k] for k in stand_in}
    return broadcast(args, args.from_key, [MsgUpdateMiner(owner, miner, **fields)])


def _heartbeat(args: argparse.Namespace) -> int:
    msg = MsgMinerHeartbeat(resolve_address(args, args.from_key), resolve_address(args, args.miner))
    return broadcast(args, args.from_key, [msg])


def _unbond_miner(args: argparse.Namespace) -> int:
    msg = MsgUnbondMiner(resolve_address(args, args.from_key), resolve_address(args, args.miner))
    return broadcast(args, args.from_key, [msg])


# query handlers -----------------------------------------------------------------------------------
def _val_line(v: dict[str, Any]) -> str:
    return (f"{v['operator']}  {v['moniker']:<16} power {v['power']:>6}  tokens {v['tokens']}unes  "
            f"{v['status']}  cons {v['cons_address']}")


def _validators(args: argparse.Namespace) -> int:
    found = queries.validators(rpc_from(args), args.status)
    res: dict[str, Any] = {"validators": found, "total": len(found)}
    emit(args, res, "\n".join(_val_line(v) for v in res["validators"]) or "no validators")
    return 0


def _validator(args: argparse.Namespace) -> int:
    address = args.address
    if not (len(address) == 40 and all(c in "0123456789abcdefABCDEF" for c in address)):
        address = resolve_address(args, address)
    res = queries.validator(rpc_from(args), address)
    lines = [f"{k}: {v}" for k, v in res.items() if k != "signing_info"]
    if "signing_info" in res:
        info = res["signing_info"]
        lines.append(f"missed_blocks: {info['missed']} in the current window (since height {info['start_height']})")
    emit(args, res, "\n".join(lines))
    return 0


def _delegations(args: argparse.Namespace) -> int:
    if args.validator:
        found = queries.delegations(rpc_from(args), validator=resolve_address(args, args.validator))
    elif args.delegator:
        found = queries.delegations(rpc_from(args), delegator=resolve_address(args, args.delegator))
    else:
        raise ConfigError("give a delegator, or --validator")
    res: dict[str, Any] = {"delegations": found, "total": len(found)}
    text = "\n".join(f"{d['delegator']} -> {d['validator']}  {d['tokens']}unes ({d['shares']} shares)"
                     for d in res["delegations"])
    emit(args, res, text or "no delegations")
    return 0


def _unbonding(args: argparse.Namespace) -> int:
    found = queries.unbonding(rpc_from(args), resolve_address(args, args.delegator) if args.delegator else None)
    res: dict[str, Any] = {"entries": found, "total": len(found)}
    text = "\n".join(f"#{e['id']} {e['delegator']} from {e['validator']}: {e['amount']}unes at height "
                     f"{e['completion_height']}" for e in res["entries"])
    emit(args, res, text or "no unbonding entries")
    return 0


def _params(args: argparse.Namespace) -> int:
    res = queries.staking_params(rpc_from(args))
    emit(args, res, "\n".join(f"{k}: {v}" for k, v in sorted(res.items())))
    return 0


def _pool(args: argparse.Namespace) -> int:
    res = queries.pool(rpc_from(args))
    emit(args, res, "\n".join(f"{k}: {v}" for k, v in sorted(res.items())))
    return 0



def _miner_line(m: dict[str, Any]) -> str:
    return (f"{m['miner']}  {m['model_id']} [{m['block_start']},{m['block_end']})  {m['status']:<9} "
            f"R {m['reputation_decimal']}  bond {m['bond']}unes  {m['endpoint']}")


def _miners(args: argparse.Namespace) -> int:
    found = queries.miners(rpc_from(args), args.model, args.status)
    res: dict[str, Any] = {"miners": found, "total": len(found)}
    emit(args, res, "\n".join(_miner_line(m) for m in res["miners"]) or "no miners")
    return 0


def _miner(args: argparse.Namespace) -> int:
    address = resolve_address(args, args.miner)
    res = queries.miner(rpc_from(args), address)
    if res is None:
        raise RPCError(f"miner {address} not found")
    emit(args, res, "\n".join(f"{k}: {v}" for k, v in res.items()))
    return 0

