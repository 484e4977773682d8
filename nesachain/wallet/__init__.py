"""Chain access: CometBFT's RPC, the keyring, building, signing and sending txs, and typed queries.

    rpc         ``CometRPC``: CometBFT's JSON-RPC over HTTP (status, blocks, txs, abci_query)
    queries     one typed function per query of the chain's state (the only place that names a query path)
    keyring     named ed25519 keys in one file (passphrase-sealed, or plain text for localnets)
    txs         sign, broadcast and await a tx; re-sign after another process took the account's sequence
    view        ``ChainView``: what an agent reads and sends through one node with one key

Every role uses the chain through this package; it imports no role.
"""
