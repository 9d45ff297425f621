"""The demo model's training script is deterministic and its pieces match ComfyUI's (a few steps, tiny pool)."""
import torch


def _train_a_little(steps=2, expect_first_step=0, **checkpointing):
    from demo_model import architecture as arch
    from demo_model import train as T

    torch.manual_seed(0)
    ae = arch.autoencoder()
    T.init_weights(ae)
    T.train_vae(ae, steps=2, batch=2, seed=1)
    T.normalise_latents(ae, seed=2)
    ae.requires_grad_(False)
    images, scenes = T.render_pool(3, 8, chunk=4)
    latents = T.encode_pool(ae, images)
    base, clip = arch.unet_model(), arch.clip_model()
    unet, text = base.diffusion_model, arch.text_transformer(clip)
    T.init_weights(unet, zero_outputs=True)
    T.init_weights(text)
    unet.requires_grad_(True)
    text.requires_grad_(True)
    first_step = T.train_diffusion(unet, text, latents, scenes, steps=steps, batch=4, seed=4, **checkpointing)
    assert first_step == expect_first_step
    return {**{f"u.{k}": v.clone() for k, v in unet.state_dict().items()},
            **{f"t.{k}": v.clone() for k, v in text.state_dict().items()},
            **{f"v.{k}": v.clone() for k, v in ae.state_dict().items()}}


def test_training_is_deterministic(comfy):
    a, b = _train_a_little(), _train_a_little()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    trained = [k for k in a if k.startswith("u.") and k.endswith("out.2.weight")]
    assert trained and a[trained[0]].abs().sum() > 0  # zero-initialised output conv moved: it trained


def test_resumed_training_ends_where_an_unbroken_run_does(comfy, tmp_path):
    unbroken = _train_a_little(steps=4)
    checkpoint = str(tmp_path / "diffusion.pt")
    _train_a_little(steps=4, checkpoint=checkpoint, checkpoint_every=2)  # leaves the state after step 2
    assert torch.load(checkpoint, weights_only=False)["step"] == 2
    resumed = _train_a_little(steps=4, expect_first_step=2, checkpoint=checkpoint, checkpoint_every=2)
    assert all(torch.equal(unbroken[k], resumed[k]) for k in unbroken)


def test_training_text_forward_is_comfyuis(comfy):
    from demo_model import architecture as arch
    from demo_model import train as T

    clip = arch.clip_model()
    text = arch.text_transformer(clip)
    T.init_weights(text)
    assert T.check_text_forward(text, T.Tokens()) < 1e-4


def test_caption_targets_read_each_object_and_the_scene(comfy):
    from demo_model import train as T

    tokens = T.Tokens()
    vocab = T.caption_vocab(tokens)
    text = "a large red circle and a blue square on a gray background"
    ids = tokens([text])[0].tolist()
    t = T.caption_targets(ids, vocab)
    words = text.split()
    circle, square, background = words.index("circle") + 1, words.index("square") + 1, len(words)
    assert (t["shape"][circle], t["colour"][circle], t["size"][circle]) == (
        T.SHAPE_CLASSES.index("circle"), T.COLOUR_CLASSES.index("red"), T.SIZE_CLASSES.index("large"))
    assert (t["shape"][square], t["colour"][square], t["size"][square]) == (
        T.SHAPE_CLASSES.index("square"), T.COLOUR_CLASSES.index("blue"), T.SIZE_CLASSES.index(None))
    assert t["bg"][background] == T.BG_CLASSES.index("gray")
    end = len(words) + 1
    assert t["count"][end] == t["count"][-1] == 2
    assert t["shape1"][-1] == T.SHAPE_CLASSES.index("square") and t["colour0"][end] == T.COLOUR_CLASSES.index("red")
    assert t["shape"][1] == -100 and t["count"][end - 1] == -100  # not asked before the end token
    empty = T.caption_targets(tokens([""])[0].tolist(), vocab)
    assert empty["count"][1] == 0 and empty["shape0"][1] == T.SHAPE_CLASSES.index(None)


def test_text_warm_start_teaches_the_probes(comfy, capsys):
    import re

    from demo_model import architecture as arch
    from demo_model import train as T

    torch.manual_seed(0)
    text = arch.text_transformer(arch.clip_model())
    T.init_weights(text)
    T.pretrain_text(text, T.Tokens(), steps=150, batch=64, seed=0)
    log = capsys.readouterr().out
    accuracies = [float(a) for a in re.findall(r"min probe accuracy ([0-9.]+)", log)]
    assert accuracies[0] < 0.5 and accuracies[-1] > 0.8, log


def test_continuing_from_the_shipped_file_starts_from_its_weights(comfy, tmp_path):
    """--init-from loads VAE, UNet and text encoder; at lr 0 one step writes the same tensors back."""
    from safetensors.torch import load_file

    from demo_model import loader
    from demo_model import train as T

    out = tmp_path / "continued.safetensors"
    T.main(["--init-from", str(loader.WEIGHTS), "--out", str(out), "--pool", "8", "--steps", "1", "--batch", "2",
            "--lr", "0"])
    before, after = load_file(str(loader.WEIGHTS)), load_file(str(out))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = loader.read(out)[1]["training"]
    assert meta["continued_from"] == loader.read()[1]["training"] and meta["steps"] == 1
