"""Being a miner on chain, and a miner's process.

    start        ``nesad miner start``: the shard server (``nesachain.shard_exec.server``) and, on chain, beside it:
    registrar    checks the served blocks against the chain's hashes, runs the agents, stops when unbonded
    chain_agent  registration, heartbeats, moves (MsgRegisterMiner, MsgMinerHeartbeat, MsgUpdateMiner)
    placement    which blocks to serve, as Petals chooses them (pure)
    results      the commit-reveal of each session's step-log root

The client and the verifier never import this package.
"""
