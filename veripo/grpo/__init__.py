"""The GRPO stage: sample G rollouts per video question, reward them, turn rewards into advantages, update."""
