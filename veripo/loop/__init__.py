"""The VerIPO loop: N iterations of GRPO -> verify -> DPO, each stage a resumable step on disk."""
