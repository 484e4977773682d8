"""The miner's chain side: where to serve (placement) and staying registered (chain_agent)."""
