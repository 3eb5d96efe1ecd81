"""Pieces every trainer shares (SFT warm start, GRPO, DPO): optimiser + schedule, checkpoints that resume,
metrics to JSONL and TensorBoard, progress bars."""
