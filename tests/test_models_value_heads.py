"""Two value heads on the policy's hidden states: shapes, independence, detach, and the save/load round trip."""
import pytest
import torch

from veripo.models.value_heads import ValueHeads, ValueHeadsError, load_value_heads, save_value_heads


def test_forward_shape_dtype_and_independent_heads():
    torch.manual_seed(0)
    heads = ValueHeads(hidden_size=8, num_heads=2)
    h = torch.randn(3, 5, 8, dtype=torch.bfloat16)
    v = heads(h)
    assert v.shape == (3, 5, 2) and v.dtype == torch.float32
    assert not torch.allclose(v[..., 0], v[..., 1])          # min(V1, V2) != mean(V1, V2)
    assert torch.equal(heads.heads[0].bias, torch.zeros(1))
    with pytest.raises(ValueError, match="hidden size 8"):
        heads(torch.randn(2, 4))


def test_detach_hidden_keeps_the_trunk_out_of_the_value_loss():
    h = torch.randn(2, 3, 4, requires_grad=True)
    ValueHeads(4, detach_hidden=True)(h).sum().backward()
    assert h.grad is None
    ValueHeads(4, detach_hidden=False)(h).sum().backward()
    assert h.grad is not None and h.grad.abs().sum() > 0


def test_round_trip_through_torch_save_and_load(tmp_path):
    torch.manual_seed(1)
    heads = ValueHeads(hidden_size=16, num_heads=2)
    with torch.no_grad():
        heads.heads[1].bias.fill_(0.25)                      # a trained-looking change
    path = save_value_heads(heads, tmp_path)
    assert path == tmp_path / "value_heads.pt" and path.is_file()
    loaded = load_value_heads(tmp_path, hidden_size=16)
    assert loaded.config() == heads.config()
    for (k, a), (k2, b) in zip(heads.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    h = torch.randn(2, 3, 16)
    torch.testing.assert_close(loaded(h), heads(h), rtol=0, atol=0)
    fresh = ValueHeads(hidden_size=16, num_heads=2)        # a plain state_dict round trip too
    torch.save(heads.state_dict(), tmp_path / "sd.pt")
    fresh.load_state_dict(torch.load(tmp_path / "sd.pt", weights_only=True))
    torch.testing.assert_close(fresh(h), heads(h), rtol=0, atol=0)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ValueHeadsError, match="no value-heads file"):
        load_value_heads(tmp_path / "missing.pt")
    save_value_heads(ValueHeads(8), tmp_path / "vh.pt")
    with pytest.raises(ValueHeadsError, match="hidden size 8.*has 16"):
        load_value_heads(tmp_path / "vh.pt", hidden_size=16)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueHeadsError, match="not a veripo value-heads file"):
        load_value_heads(tmp_path / "other.pt")


def test_heads_learn_pdppo_returns_with_the_clipped_value_loss():
    """ValueHeads -> pdppo (values, values2) -> clipped_value_loss on its per-head returns: a few Adam steps on fixed
    hidden states bring the value loss down, and the advantages are token-level [N, T] for ppo_clip."""
    from veripo.algos import clipped_value_loss, get_advantage_estimator, get_policy_loss

    torch.manual_seed(0)
    hidden = torch.randn(4, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=torch.float32)
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])
    heads = ValueHeads(8, num_heads=2)
    opt = torch.optim.Adam(heads.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        with torch.no_grad():
            old = heads(hidden)
        est = get_advantage_estimator("pdppo")(rewards, torch.zeros(4, dtype=torch.long), values=old[..., 0],
                                               values2=old[..., 1], response_mask=mask)
        loss, _ = clipped_value_loss(heads(hidden), old, est.returns, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert est.advantages.shape == (4, 5)
    logps = torch.zeros(4, 5, requires_grad=True)
    pl, _ = get_policy_loss("ppo_clip")(logps=logps, old_logps=None, advantages=est.advantages, mask=mask)
    pl.backward()
    assert torch.isfinite(logps.grad).all() and logps.grad[mask == 0].abs().sum() == 0
