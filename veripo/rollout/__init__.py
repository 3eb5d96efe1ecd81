"""The rollout pipeline in four visible steps: generate (engines), filter, control, replay (the store)."""
