"""`python -m nesachain.localnet init|up|down|status|logs|demo` (what localnet/*.sh and make call)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from nesachain.cli.inference_format import format_session
from nesachain.client.request import await_settled, run_request
from nesachain.errors import ConfigError, NesaError
from nesachain.localnet.net import REPO, Localnet
from nesachain.localnet.swarm import ensure_shards, shards_ready, start_miner, start_verifier, wait_active_miners
from nesachain.modules.bank.msgs import MsgSend
from nesachain.wallet import queries
from nesachain.wallet.txs import send_msgs

DEFAULT_ROOT = Path(os.environ.get("NESA_LOCALNET", REPO / ".localnet"))


def _net(args: argparse.Namespace) -> Localnet:
    root = Path(args.root)
    if (root / "localnet.json").exists():
        return Localnet.load(root)
    return Localnet(root, base_port=args.base_port)


SHARDS = REPO / ".cache" / "shards" / "smollm2-135m"
DEMO_MODEL = "smollm2-135m"
MINER_RANGES = [(0, 10), (10, 20), (20, 30)]


def _init(net: Localnet) -> None:
    if not shards_ready(SHARDS, 30):
        print(f"sharding {DEMO_MODEL} into 30 blocks under {SHARDS} (once)", flush=True)
    ensure_shards(DEMO_MODEL, 30, SHARDS)
    net.init(shards={DEMO_MODEL: SHARDS})


def cmd_init(args: argparse.Namespace) -> int:
    net = _net(args)
    _init(net)
    print(f"initialized {net.n} validators in {net.root} (chain {net.chain_id}, RPC 127.0.0.1:{net.ports(0).rpc})")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    net = _net(args)
    if net.initialized and net.stale():
        if any(row["up"] for row in net.status()):
            raise ConfigError(f"{net.root} was made from an older genesis template: stop it and start over with "
                              "`python -m nesachain.localnet down --clean`")
        print(f"{net.root} was made from an older genesis template: starting a new localnet", flush=True)
        net.clean()
        net = Localnet(net.root, base_port=net.base_port)
    if not net.initialized:
        _init(net)
    if any(row["up"] for row in net.status()):
        print("localnet is already running")
    else:
        net.up()
    for i, blocks in enumerate(MINER_RANGES):
        if not net.recorded_alive(f"miner{i}"):
            start_miner(net, i, SHARDS, blocks)
    for i in range(net.n):
        if not net.recorded_alive(f"verifier{i}"):
            start_verifier(net, i, {DEMO_MODEL: SHARDS})
    print_status(net)
    return 0


def print_status(net: Localnet) -> None:
    for row in net.status():
        state = f"height {row['height']:>6}  app_hash {row['app_hash']}" if row["up"] else "down"
        print(f"node{row['node']}  rpc {row['rpc']}  {state}")


def cmd_status(args: argparse.Namespace) -> int:
    print_status(_net(args))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    net = _net(args)
    if args.clean:
        net.clean()
        print(f"stopped and removed {net.root}")
    else:
        net.down()
        print("stopped")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    net = _net(args)
    if not 0 <= args.node < net.n:
        raise ConfigError(f"--node must be in 0..{net.n - 1}, got {args.node}")
    if args.lines < 1:
        raise ConfigError(f"--lines must be at least 1, got {args.lines}")
    path = net.home(args.node) / ("app.log" if args.app else "cometbft.log")
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError(f"no log to show: {exc} (was the localnet started? `make localnet`)") from None
    print("\n".join(text.splitlines()[-args.lines :]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    net = _net(args)
    cmd_up(args)
    rpc = net.rpc(0)
    ring = net.keyring()
    faucet = ring.signing_key("faucet")
    demo = ring.show("demo") if any(k.name == "demo" for k in ring.list()) else ring.add("demo")
    out = send_msgs(rpc, faucet, [MsgSend(ring.show("faucet").address, demo.address, 1_000_000)])
    balance = queries.balance(rpc, demo.address)["amount"]
    print(f"demo transfer: 1000000unes faucet -> {demo.address}")
    print(f"  txhash {out.hash}  height {out.height}  code {out.code} {out.log}")
    print(f"  demo balance now {balance}unes; chain height {rpc.height()}")
    print("waiting for 3 miners to register and answer …", flush=True)
    wait_active_miners(net, DEMO_MODEL, len(MINER_RANGES))
    prompt = "What is the capital of France? Answer in one sentence."
    print(f"verified request to {DEMO_MODEL}: {prompt!r}")
    result = asyncio.run(run_request(rpc, faucet, SHARDS, DEMO_MODEL, prompt, 24,
                                     on_token=lambda piece: print(piece, end="", flush=True)))
    print(f"\n  session {result.session_id}: {len(result.tokens)} tokens, ttft {result.ttft_s * 1000:.0f} ms, "
          f"{result.tokens_per_s:.1f} tokens/s; waiting for commitments, challenges and verdicts …", flush=True)
    session = await_settled(rpc, result.session_id, 240)
    print(format_session(session))
    print(f"wallet: . {Path(sys.prefix) / 'bin' / 'activate'}  # puts nesad on PATH\n"
          f"        export NESAD_HOME={net.root / 'wallet'} NESAD_KEYRING_BACKEND=test\n"
          "        nesad query bank balance faucet   # for example; stop the localnet with `make localnet-down`")
    return 0 if out.ok and session["status"] == "settled" else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m nesachain.localnet")
    parser.add_argument("--root", default=str(DEFAULT_ROOT), help="folder holding the node homes")
    parser.add_argument("--base-port", type=int, default=26656, help="node i uses base+10i (p2p), +1 (rpc), +2 (abci)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("init").set_defaults(func=cmd_init)
    sub.add_parser("up").set_defaults(func=cmd_up)
    sub.add_parser("status").set_defaults(func=cmd_status)
    p = sub.add_parser("down")
    p.add_argument("--clean", action="store_true", help="also delete the node homes")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("logs")
    p.add_argument("--node", type=int, default=0)
    p.add_argument("--app", action="store_true", help="the app's log instead of CometBFT's")
    p.add_argument("--lines", type=int, default=50)
    p.set_defaults(func=cmd_logs)
    sub.add_parser("demo").set_defaults(func=cmd_demo)
    args = parser.parse_args()
    try:
        rc: int = args.func(args)
    except NesaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
