"""Off-chain agents that turn miners' and validators' work into on-chain commitments and verdicts."""
