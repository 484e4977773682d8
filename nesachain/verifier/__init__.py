"""A validator's verifier: fetch a challenged miner's step log and frames, replay them on this node's own
hash-checked copy of the blocks, and commit then reveal a verdict (docs/protocol.md).

    verdicts    ``Verifier``: the commit-reveal of verdicts, and how a replay is judged
    replay      ``ShardReplayer``: the recomputation on this node's shards
    run         the ``nesad verifier start`` process

It talks to miners only through ``nesachain.protocol`` and never imports the miner's server or agents.
"""
