"""`nesad tx …`: sign with a keyring key, broadcast, wait for the block, print the outcome.

Every `nesad tx …` command takes ``--dry-run``: the tx is built and signed as it would be sent (chain id,
sequence and the chain's fee rule read from the node), and its size, messages, fee and required fee are
printed; nothing is sent."""

from __future__ import annotations

import argparse

from nacl.signing import SigningKey

from nesachain.cli.common import add_client_options, add_keyring_options, emit, keyring_from, rpc_from
from nesachain.errors import ConfigError, KeyringError
from nesachain.modules.bank.msgs import MsgSend
from nesachain.tx.msg import Msg
from nesachain.types.address import HRP, AddressError, decode_address, is_address
from nesachain.types.coin import DENOM, check_amount
from nesachain.wallet.txs import SEQUENCE_RETRIES, TxOutcome, check_msgs, prepare_msgs, send_msgs

__all__ = ["add_tx_options", "broadcast", "parse_amount", "register", "resolve_address"]


def add_tx_options(p: argparse.ArgumentParser) -> None:
    add_client_options(p)
    add_keyring_options(p)
    p.add_argument("--fee", type=int, default=None,
                   help="fee in unes (default: what the chain's fee rule asks of this tx: base + per byte + per msg)")
    p.add_argument("--memo", default="")
    p.add_argument("--sequence", type=int, default=None, help="override the account sequence")
    p.add_argument("--no-wait", action="store_true", help="return after CheckTx, do not wait for the block")
    p.add_argument("--dry-run", action="store_true",
                   help="build and sign the tx, print its size, messages and required fee, send nothing")


def parse_amount(text: str) -> int:
    digits = text.removesuffix(DENOM)
    if not digits.isdigit():
        raise ConfigError(f"amount {text!r} must be a whole number of {DENOM}, e.g. 1000{DENOM}")
    try:
        return check_amount(int(digits))
    except ValueError as exc:
        raise ConfigError(f"amount {text!r}: {exc}") from None


def resolve_address(args: argparse.Namespace, name_or_address: str) -> str:
    """An address as given, or a key's: a mistyped address says what is wrong with it, not "no key named"."""
    if is_address(name_or_address):
        return name_or_address
    try:
        return keyring_from(args).show(name_or_address).address
    except KeyringError:
        if name_or_address.startswith(f"{HRP}1"):
            try:
                decode_address(name_or_address)
            except AddressError as exc:  # bad checksum, prefix, length
                raise ConfigError(f"{exc}, and no key has that name") from None
        raise


def broadcast(args: argparse.Namespace, signer: str, msgs: list[Msg]) -> int:
    check_msgs(msgs, sequence=args.sequence, fee=args.fee, memo=args.memo)
    key = keyring_from(args).signing_key(signer)
    if args.dry_run:
        return _dry_run(args, key, msgs)
    out: TxOutcome = send_msgs(
        rpc_from(args), key, msgs, chain_id=args.chain_id, fee=args.fee, memo=args.memo,
        sequence=args.sequence, wait=not args.no_wait, retries=SEQUENCE_RETRIES,
    )
    if out.ok:
        where = f"committed at height {out.height}" if out.stage == "deliver" else "accepted into the mempool"
        emit(args, out.to_dict(), f"txhash: {out.hash}\n{where}, code 0")
        return 0
    text = f"txhash: {out.hash}\nrejected in {'CheckTx' if out.stage == 'check' else 'the block'}: " \
           f"code {out.code} ({out.codespace}): {out.log}"
    emit(args, out.to_dict(), text)
    return 1


def _dry_run(args: argparse.Namespace, key: SigningKey, msgs: list[Msg]) -> int:
    signed = prepare_msgs(rpc_from(args), key, msgs, chain_id=args.chain_id, fee=args.fee, memo=args.memo,
                          sequence=args.sequence)
    text = "\n".join([
        "dry run: signed, not sent",
        f"account: {signed.account} sequence {signed.sequence}",
        f"size: {signed.size} bytes",
        f"messages: {signed.n_msgs} ({', '.join(m.TYPE for m in msgs)})",
        f"fee: {signed.fee}unes",
        f"required fee: {signed.required_fee}unes" + ("" if signed.fee >= signed.required_fee
                                                       else " (the chain would refuse this fee)"),
    ])
    emit(args, {**signed.to_dict(), "types": [m.TYPE for m in msgs], "sent": False}, text)
    return 0 if signed.fee >= signed.required_fee else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tx = sub.add_parser("tx", help="sign and broadcast transactions")
    tsub = tx.add_subparsers(dest="tx_module", required=True)
    bank = tsub.add_parser("bank", help="token transfers")
    bsub = bank.add_subparsers(dest="bank_cmd", required=True)
    p = bsub.add_parser("send", help="send unes from a key to an address or key")
    p.add_argument("from_key", help="key name (or address) in the keyring that signs")
    p.add_argument("to", help="recipient address or key name")
    p.add_argument("amount", help="amount in unes, e.g. 1000 or 1000unes")
    add_tx_options(p)
    p.set_defaults(func=_send)


def _send(args: argparse.Namespace) -> int:
    amount = parse_amount(args.amount)
    sender = resolve_address(args, args.from_key)
    recipient = resolve_address(args, args.to)
    return broadcast(args, args.from_key, [MsgSend(sender, recipient, amount)])
