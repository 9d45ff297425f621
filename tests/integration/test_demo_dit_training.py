"""The demo DiT's training script: ComfyUI's own Flux and T5 forward code trains, deterministically, resumably."""
import torch

from inversion.comfy_autograd import plain_torch_rope


def _train_a_little(steps=2, expect_first_step=0, **checkpointing):
    from demo_model import dit_architecture as arch
    from demo_model import train as T
    from demo_model import train_dit as D

    torch.manual_seed(0)
    ae = arch.autoencoder()
    T.init_weights(ae)
    T.train_vae(ae, steps=2, batch=2, seed=1)
    D.normalise_flux_latents(ae, seed=2, n=16)
    ae.requires_grad_(False)
    images, scenes = T.render_pool(3, 8, chunk=4)
    latents = D.encode_pool(ae, images)
    dm = arch.dit_model().diffusion_model
    text = D.FluxText(arch.flux_clip())
    D.init_dit(dm)
    D.init_t5(text.t5.transformer)
    T.init_weights(text.clip_l.transformer)
    first = D.train_flow(dm, text, latents, scenes, steps=steps, batch=4, seed=4, lr=1e-3, **checkpointing)
    assert first == expect_first_step
    return {**{f"d.{k}": v.clone() for k, v in dm.state_dict().items()},
            **{f"t.{k}": v.clone() for k, v in text.t5.transformer.state_dict().items()}}


def test_flow_training_is_deterministic_and_trains_the_zero_initialised_outputs(comfy):
    a, b = _train_a_little(), _train_a_little()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["d.final_layer.linear.weight"].abs().sum() > 0  # adaLN-Zero start: it moved, so it trained
    assert a["d.double_blocks.0.img_mod.lin.weight"].abs().sum() > 0


def test_resumed_flow_training_ends_where_an_unbroken_run_does(comfy, tmp_path):
    unbroken = _train_a_little(steps=4)
    checkpoint = str(tmp_path / "flow.pt")
    _train_a_little(steps=4, checkpoint=checkpoint, checkpoint_every=2)
    assert torch.load(checkpoint, weights_only=False)["step"] == 2
    resumed = _train_a_little(steps=4, expect_first_step=2, checkpoint=checkpoint, checkpoint_every=2)
    assert all(torch.equal(unbroken[k], resumed[k]) for k in unbroken)


def test_training_forward_is_comfyuis_and_gradients_reach_t5(comfy):
    from demo_model import dit_architecture as arch
    from demo_model import train_dit as D

    dm = arch.dit_model().diffusion_model
    text = D.FluxText(arch.flux_clip())
    D.init_dit(dm)
    D.init_t5(text.t5.transformer)
    from demo_model import train as T
    T.init_weights(text.clip_l.transformer)
    with torch.no_grad():  # adaLN-Zero makes every block the identity; give them weight so the check means something
        for name, p in dm.named_parameters():
            if ".lin." in name or name.startswith("final_layer."):
                p.normal_(0, 0.05)
    assert D.check_training_forward(dm, text) < 1e-3
    with plain_torch_rope():  # as training runs: comfy-kitchen's RoPE has no autograd and no float64
        _float64_forward_is_comfyuis_and_gradients_reach_t5(dm, text)


def _float64_forward_is_comfyuis_and_gradients_reach_t5(dm, text):
    from demo_model import train_dit as D

    # in float64 the NoInplace forward is ComfyUI's exactly (float32 differs by the attention kernel's rounding)
    dm.double()
    text.t5.transformer.double()
    captions = ["a large red circle on a gray background", "", "a blue square and a small pink cross"]
    x, s, y = torch.randn(3, 16, 16, 16, dtype=torch.float64), torch.tensor([0.2, 0.6, 0.9]), text.pooled(captions)
    with torch.no_grad():
        ctx = text.t5(text.t5_ids(captions))[0].double()
        ref = dm(x, s.double(), ctx, y.double())
        out = dm(x.as_subclass(D.NoInplace), s.double(), ctx.as_subclass(D.NoInplace), y.double())
    assert torch.equal(D.plain(out), ref)
    dm.float()
    text.t5.transformer.float()
    D.make_trainable(dm)
    D.make_trainable(text.t5.transformer)
    with D.t5_input_hook(text):
        ctx = text.tokens(["a large red circle on a gray background"])
    x = torch.randn(1, 16, 16, 16).as_subclass(D.NoInplace)
    D.plain(dm(x, torch.tensor([0.5]), ctx, text.pooled(["x"]))).square().mean().backward()
    emb = text.t5.transformer.get_input_embeddings().weight
    assert emb.grad is not None and emb.grad.abs().sum() > 0


def test_flux_sigmas_follow_comfyuis_time_shift(comfy):
    import comfy.model_sampling

    from demo_model import train_dit as D

    u = torch.linspace(-3, 3, 7)
    expected = comfy.model_sampling.flux_time_shift(D.FLUX_SHIFT, 1.0, torch.sigmoid(u))
    assert torch.allclose(D.flux_sigmas(u), expected)


def test_latents_are_normalised_for_fluxs_latent_format(comfy):
    import comfy.latent_formats

    from demo_model import dit_architecture as arch
    from demo_model import train as T
    from demo_model import train_dit as D

    torch.manual_seed(0)
    ae = arch.autoencoder()
    T.init_weights(ae)
    images, _ = T.render_pool(5, 16, chunk=8)
    x = T.to_tensor(images)
    with torch.no_grad():
        before = T.vae_decode(ae, T.vae_moments(ae, x)[0])
        D.normalise_flux_latents(ae, seed=5, n=64)
        z = T.vae_moments(ae, x)[0]
        after = T.vae_decode(ae, z)
    seen = comfy.latent_formats.Flux().process_in(z)
    assert abs(seen.mean().item()) < 0.2 and abs(seen.std().item() - 1) < 0.2
    assert torch.allclose(before, after, atol=1e-4)  # the decoder undoes the folded gain and offset
