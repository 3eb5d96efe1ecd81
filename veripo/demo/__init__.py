"""``veripo demo``: the whole VerIPO method on synthetic videos with the offline tiny model, on a CPU."""
