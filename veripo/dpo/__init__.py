"""The DPO stage: train the policy on the verifier's chosen/rejected pairs with any preference loss."""
