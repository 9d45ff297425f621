"""Train the demo DiT (Flux shrunk) on demo_world: VAE, then the transformer + T5 together. Deterministic, CPU.

    python -m demo_model.train_dit --out demo_model/attn_edit_demo_dit.safetensors

Phase 1 trains a 16-channel autoencoder as the UNet demo's (train.train_vae), then folds a gain and an offset
into quant_conv / post_quant_conv so that Flux's latent format (shift 0.1159, scale 0.3611) maps its latents to
zero mean and unit variance. Phase 2a: CLIP-L is the UNet demo's trained text encoder, frozen (it gives only the
pooled vector); T5 gets the same supervised probe warm start as the UNet demo's CLIP. Phase 2b trains the
transformer and T5 with the rectified-flow objective: x_t = (1 - s) x0 + s eps, the network predicts
eps - x0 (what ComfyUI's CONST model sampling turns back into x0), s drawn logit-normal (SD3, Esser et al.
2024 section 3.1) and moved by Flux's time shift (mu 1.15, as ComfyUI samples it). 10 % empty captions for
classifier-free guidance; half the time the pooled vector is the empty caption's, so that the image tokens read
the prompt from T5's tokens, as Flux's do. No offset noise: at s = 1 nothing of the image is left, so the
background can only come from the caption. An EMA of the weights is saved (fp16, Flux checkpoint keys).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

from demo_model import dit_architecture as arch
from demo_model import train as unet_train
from demo_model.train import EMA, init_weights, log, render_pool, to_tensor, training_caption
from demo_world import scene as world
from inversion.comfy_autograd import NoInplace, plain, plain_torch_rope

FLUX_SHIFT = 1.15  # ComfyUI's ModelSamplingFlux default, which the loader keeps
POOLED_DROPOUT = 0.5


# ---------------------------------------------------------------- phase 1: autoencoder in Flux's latent format

@torch.no_grad()
def normalise_flux_latents(ae, seed: int, n: int = 512) -> tuple[float, float]:
    """Fold z' = g z + b into the VAE so that (z' - shift) * scale has zero mean and unit std (over n renders)."""
    import comfy.latent_formats

    fmt = comfy.latent_formats.Flux()
    images, _ = render_pool(seed, n)
    mean, _ = unet_train.vae_moments(ae, to_tensor(images))
    gain = 1.0 / (fmt.scale_factor * mean.std().item())
    offset = fmt.shift_factor - gain * mean.mean().item()
    e = ae.embed_dim
    ae.quant_conv.weight[:e] *= gain
    ae.quant_conv.bias[:e] = gain * ae.quant_conv.bias[:e] + offset
    ae.quant_conv.bias[e:] += 2 * math.log(gain)  # logvar of the scaled posterior
    ae.post_quant_conv.weight /= gain  # z = (z' - b) / g
    ae.post_quant_conv.bias -= offset * ae.post_quant_conv.weight.sum(dim=(1, 2, 3))
    return gain, offset


@torch.no_grad()
def encode_pool(ae, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    """Latents as the transformer sees them (Flux's process_in applied)."""
    import comfy.latent_formats

    fmt = comfy.latent_formats.Flux()
    out = [unet_train.vae_moments(ae, to_tensor(images[i:i + batch]))[0] for i in range(0, len(images), batch)]
    return fmt.process_in(torch.cat(out))


# ---------------------------------------------------------------- text: Flux's CLIP-L (pooled) + T5 (tokens)

class FluxText:
    """Captions -> T5 token ids and CLIP-L pooled vectors, through ComfyUI's Flux tokenizer and encoders."""

    def __init__(self, clip):
        self.clip = clip
        self.t5 = clip.cond_stage_model.t5xxl
        self.clip_l = clip.cond_stage_model.clip_l
        self.ids: dict[str, tuple[list[int], list[int]]] = {}
        self.pooled_cache: dict[str, torch.Tensor] = {}

    def _ids(self, text: str) -> tuple[list[int], list[int]]:
        if text not in self.ids:
            tok = self.clip.tokenize(text)
            self.ids[text] = ([p[0] for p in tok["l"][0]], [p[0] for p in tok["t5xxl"][0]])
        return self.ids[text]

    def t5_ids(self, texts: list[str]) -> list[list[int]]:
        rows = [self._ids(t)[1] for t in texts]
        n = max(len(r) for r in rows)
        return [r + [0] * (n - len(r)) for r in rows]  # T5's pad id; the tokenizer pads to T5_MIN_LENGTH

    def tokens(self, texts: list[str]) -> torch.Tensor:
        """T5's output tokens [B, L, d], differentiable (ComfyUI's T5 forward)."""
        return self.t5(self.t5_ids(texts))[0]

    @torch.no_grad()
    def pooled(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self.pooled_cache]
        if missing:
            pooled = self.clip_l([self._ids(t)[0] for t in missing])[1]
            self.pooled_cache.update(zip(missing, plain(pooled).float()))
        return torch.stack([self.pooled_cache[t] for t in texts])


def t5_vocab(text: FluxText) -> dict[int, tuple[str, str]]:
    """T5 id -> (kind, word) for demo_world's words (each one SentencePiece token) and the end token."""
    words = [("shape", w) for w in world.SHAPES] + [("colour", w) for w in world.COLOURS] + \
            [("size", w) for w in world.SIZES] + [("background", w) for w in world.BACKGROUNDS] + \
            [("background_word", "background")]
    vocab = {}
    for kind, word in words:
        ids = text._ids(word)[1]
        if ids[1] != text.t5.special_tokens["end"]:
            raise RuntimeError(f"{word!r} is not one T5 token")
        vocab[ids[0]] = (kind, word)
    vocab[text.t5.special_tokens["end"]] = ("end", "")
    return vocab


def make_trainable(module: torch.nn.Module) -> None:
    module.train().requires_grad_(True)  # ComfyUI builds its models with gradients off


def t5_input_hook(text: FluxText):
    """Make T5's input embeddings NoInplace for the residual adds of its blocks."""
    return text.t5.transformer.get_input_embeddings().register_forward_hook(
        lambda module, args, out: out.as_subclass(NoInplace))


def pretrain_t5(text: FluxText, steps: int, batch: int, seed: int, lr: float = 2e-3) -> None:
    """The UNet demo's supervised warm start (train.pretrain_text), on T5: linear probes on its output tokens
    read back each object's attributes at its shape word, the background at 'background', and the whole scene
    from the end token on. T5 attends both ways, so every token may use the whole caption."""
    import torch.nn.functional as F

    if steps <= 0:
        return
    t5 = text.t5.transformer
    make_trainable(t5)
    width = arch.T5_CONFIG["d_model"]
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        heads = torch.nn.ModuleDict({k: torch.nn.Linear(width, n) for k, n in unet_train.TEXT_HEADS.items()})
    opt = torch.optim.AdamW(list(t5.parameters()) + list(heads.parameters()), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    vocab = t5_vocab(text)
    hook = t5_input_hook(text)
    for step in range(steps):
        captions = [training_caption(world.random_scene(rng), rng) for _ in range(batch)]
        targets = [unet_train.caption_targets(row, vocab) for row in text.t5_ids(captions)]
        want = {k: torch.tensor([t[k] for t in targets]) for k in heads}
        h = plain(text.tokens(captions))
        logits = {k: head(h) for k, head in heads.items()}
        loss = sum(F.cross_entropy(logits[k].flatten(0, 1), want[k].flatten(), ignore_index=-100) for k in heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            asked = {k: w != -100 for k, w in want.items()}
            acc = {k: (logits[k].argmax(-1)[asked[k]] == want[k][asked[k]]).float().mean().item() for k in heads}
            log(f"t5 {step}/{steps} loss {loss.item():.4f} min probe accuracy {min(acc.values()):.3f} "
                f"({min(acc, key=acc.get)})")
    hook.remove()


# ---------------------------------------------------------------- phase 2b: rectified flow

def flux_sigmas(u: torch.Tensor) -> torch.Tensor:
    """Logit-normal draws moved by Flux's time shift: ComfyUI's flux_time_shift(mu, 1, t)."""
    t = torch.sigmoid(u)
    return math.exp(FLUX_SHIFT) / (math.exp(FLUX_SHIFT) + (1 / t - 1))


@torch.no_grad()
@plain_torch_rope()
def check_training_forward(dm, text: FluxText) -> float:
    """The NoInplace forward (transformer and T5) equals ComfyUI's plain one, up to float rounding (both with
    RoPE in plain torch, as training runs)."""
    g = torch.Generator().manual_seed(0)
    captions = ["a large red circle on a gray background", "", "a blue square and a small pink cross"]
    x = torch.randn(3, 16, 16, 16, generator=g)
    s = torch.tensor([0.2, 0.6, 0.95])
    y = text.pooled(captions)
    ref = dm(x, s, text.t5(text.t5_ids(captions))[0], y)
    with t5_input_hook(text):
        ctx = text.tokens(captions)
    out = dm(x.as_subclass(NoInplace), s, ctx, y)
    # relative, and not exact: in float32 the attention kernel picked for a tensor subclass rounds differently
    # (up to ~2e-4 with random weights); in float64 the two agree exactly (tests/integration/test_demo_dit_training)
    err = ((plain(out) - ref).abs().max() / ref.abs().max()).item()
    if err > 1e-3:
        raise RuntimeError(f"training forward differs from ComfyUI's by {err} (relative)")
    return err


def train_flow(dm, text: FluxText, latents, scenes, steps: int, batch: int, seed: int, lr: float,
               ema_decay: float = 0.999, checkpoint: str | None = None, checkpoint_every: int = 250,
               text_lr_scale: float = 0.2, warmup_share: float = 0.05, continuing: bool = False,
               pooled_dropout: float = POOLED_DROPOUT) -> int:
    t5 = text.t5.transformer
    log(f"training forward matches ComfyUI's to {check_training_forward(dm, text):.1e}")
    make_trainable(dm)
    make_trainable(t5)
    groups = [list(dm.parameters()), list(t5.parameters())]
    params = groups[0] + groups[1]
    opt = torch.optim.AdamW([{"params": g} for g in groups], lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [lr, lr * text_lr_scale], total_steps=steps,
                                                pct_start=warmup_share, final_div_factor=20)
    ema = EMA([dm, t5], ema_decay, warmup=not continuing)
    empty_pooled = text.pooled([""])
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0, running, start = time.time(), 0.0, 0
    if checkpoint and os.path.exists(checkpoint):
        start, running = unet_train.load_training_state(checkpoint, {"dit": dm, "t5": t5}, opt, sched, ema, g, rng)
    with t5_input_hook(text), plain_torch_rope():  # comfy-kitchen's RoPE op has no autograd formula
        for step in range(start, steps):
            idx = torch.randint(len(latents), (batch,), generator=g)
            x0 = latents[idx]
            captions = [training_caption(scenes[i], rng) for i in idx.tolist()]
            sigma = flux_sigmas(torch.randn(batch, generator=g))
            eps = torch.randn(x0.shape, generator=g)
            s = sigma.view(-1, 1, 1, 1)
            xt = (1 - s) * x0 + s * eps
            y = text.pooled(captions)
            y = torch.where(torch.rand(batch, 1, generator=g) < pooled_dropout, empty_pooled, y)
            pred = plain(dm(xt.as_subclass(NoInplace), sigma, text.tokens(captions), y))
            loss = ((pred - (eps - x0)) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            ema.update(step)
            running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
            if checkpoint and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
                unet_train.save_training_state(checkpoint, {"dit": dm, "t5": t5}, opt, sched, ema, g, rng, step + 1,
                                               running)
            if step % 50 == 0 or step == steps - 1:
                rate = (step - start + 1) / (time.time() - t0)
                log(f"flow {step}/{steps} loss {running:.4f} lr {sched.get_last_lr()[0]:.2e} "
                    f"{rate * batch:.1f} samples/s, eta {(steps - step - 1) / rate / 60:.1f} min")
    ema.copy_to_model()
    return start


# ---------------------------------------------------------------- files

def architecture_record() -> dict:
    """What a saved file's 'architecture' metadata holds (the loader builds the model from it)."""
    from demo_model.architecture import CLIP_CONFIG, IMAGE_SIZE

    return {"family": "flux", "dit": arch.DIT_CONFIG, "clip_l": CLIP_CONFIG, "t5": arch.T5_CONFIG,
            "t5_min_length": arch.T5_MIN_LENGTH, "vae": arch.VAE_CONFIG, "image_size": IMAGE_SIZE}


def save(path: str, dm, clip, ae, meta: dict) -> None:
    from safetensors.torch import save_file

    sd = {}
    parts = ((arch.DIT_PREFIX, dm), (arch.CLIP_L_PREFIX, clip.cond_stage_model.clip_l.transformer),
             (arch.T5_PREFIX, clip.cond_stage_model.t5xxl.transformer), (arch.VAE_PREFIX, ae))
    for prefix, module in parts:
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                sd[prefix + k] = plain(v).detach().to(torch.float16).contiguous()
    save_file(sd, path, metadata={k: json.dumps(v) for k, v in meta.items()})
    log(f"saved {path}: {os.path.getsize(path) / 2 ** 20:.1f} MiB, {sum(v.numel() for v in sd.values()):,} params")


def read_weights(path: str, new_text: bool = False) -> tuple[dict, dict]:
    """A saved demo DiT whose architecture is the one being trained (new_text: up to T5's width and the DiT's
    context_in_dim, which follows it)."""
    from pathlib import Path

    from demo_model import loader
    sd, meta = loader.read(Path(path))
    have, want = dict(meta["architecture"]), architecture_record()
    if new_text:
        for rec in (have, want):
            rec.pop("t5")
            rec["dit"] = {k: v for k, v in rec["dit"].items() if k != "context_in_dim"}
    if have != want:
        raise SystemExit(f"{path} has another architecture than demo_model/dit_architecture.py")
    return sd, meta


def load_matching(module: torch.nn.Module, sd: dict, prefix: str) -> list[str]:
    """Load the weights under prefix whose shapes match the module's; returns the names left as initialised."""
    own = module.state_dict()
    part = {k[len(prefix):]: v.float() for k, v in sd.items() if k.startswith(prefix)}
    fits = {k: v for k, v in part.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(fits, strict=False)
    return sorted(k for k in own if k not in fits and own[k].is_floating_point())


def init_dit(dm) -> None:
    """PyTorch's default initialisation; QK-norm scales at 1; adaLN-Zero (Peebles & Xie 2023, section 3.2): the
    modulation and final projections start at zero, so every block starts as the identity."""
    init_weights(dm)
    with torch.no_grad():
        for name, p in dm.named_parameters():
            if name.endswith("norm.scale"):
                p.fill_(1.0)
            if ".lin." in name or name.startswith(("final_layer.linear.", "final_layer.adaLN_modulation.")):
                p.zero_()


def init_t5(t5) -> None:
    """PyTorch's default initialisation; T5's own RMS layer norms (not torch.nn.LayerNorm) at 1."""
    init_weights(t5)
    with torch.no_grad():
        for name, p in t5.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.fill_(1.0)
    bad = [n for n, p in t5.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise RuntimeError(f"T5 parameters left uninitialised: {bad[:3]}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_model/attn_edit_demo_dit.safetensors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--unet-demo", default="demo_model/attn_edit_demo.safetensors",
                   help="the UNet demo model whose trained CLIP text encoder becomes CLIP-L")
    p.add_argument("--vae-checkpoint", help="reuse (or write) the phase-1 autoencoder here")
    p.add_argument("--vae-steps", type=int, default=1500)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--pool", type=int, default=20000, help="scenes rendered and encoded for phase 2")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--text-steps", type=int, default=400, help="supervised warm start of T5")
    p.add_argument("--text-batch", type=int, default=128)
    p.add_argument("--text-lr-scale", type=float, default=0.2, help="T5 lr / transformer lr in phase 2b")
    p.add_argument("--pooled-dropout", type=float, default=POOLED_DROPOUT)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", help="flow training state, written every --checkpoint-every steps; a run "
                                        "resumes from it when it exists")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--init-from", help="continue from a saved demo DiT (its VAE, transformer and text encoders; "
                                       "no VAE training, no T5 warm start): a second schedule of --steps at --lr")
    p.add_argument("--text-config", choices=["current", "first"], default="current",
                   help="T5's width: dit_architecture.T5_CONFIG, or FIRST_T5_CONFIG (the first two stages)")
    p.add_argument("--new-text", action="store_true",
                   help="with --init-from: a T5 of another width than the file's, initialised and warm-started "
                        "afresh (--text-steps), and the transformer's text input projection with it")
    args = p.parse_args(argv)
    if args.text_config == "first":
        arch.use_text_config(arch.FIRST_T5_CONFIG)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    unet_train.comfy_path_setup()

    t_start = time.time()
    ae = arch.autoencoder()
    init = read_weights(args.init_from, args.new_text) if args.init_from else None
    if init:
        unet_train.load_part(ae, init[0], arch.VAE_PREFIX)
        log(f"continuing from {args.init_from}")
    elif args.vae_checkpoint and os.path.exists(args.vae_checkpoint):
        ae.load_state_dict(torch.load(args.vae_checkpoint))
        log(f"autoencoder from {args.vae_checkpoint}")
    else:
        init_weights(ae)
        unet_train.train_vae(ae, args.vae_steps, args.vae_batch, args.seed + 10)
        gain, offset = normalise_flux_latents(ae, args.seed + 20)
        log(f"latent gain {gain:.3f}, offset {offset:.3f}")
        if args.vae_checkpoint:
            torch.save(ae.state_dict(), args.vae_checkpoint)
    ae.eval().requires_grad_(False)

    images, scenes = render_pool(args.seed + 30, args.pool)
    latents = encode_pool(ae, images)
    del images
    log(f"pool: {len(scenes)} scenes, latents mean {latents.mean().item():.3f} std {latents.std().item():.3f}")

    dm = arch.dit_model().diffusion_model
    clip = arch.flux_clip()
    text = FluxText(clip)
    if init and args.new_text:
        init_dit(dm)
        log(f"transformer from {args.init_from} except {load_matching(dm, init[0], arch.DIT_PREFIX)}")
        unet_train.load_part(text.clip_l.transformer, init[0], arch.CLIP_L_PREFIX)
        init_t5(text.t5.transformer)
        pretrain_t5(text, args.text_steps, args.text_batch, args.seed + 50)
    elif init:
        unet_train.load_part(dm, init[0], arch.DIT_PREFIX)
        unet_train.load_part(text.clip_l.transformer, init[0], arch.CLIP_L_PREFIX)
        unet_train.load_part(text.t5.transformer, init[0], arch.T5_PREFIX)
    else:
        from demo_model.architecture import CLIP_PREFIX
        unet_demo, _ = unet_train.read_weights(args.unet_demo)
        unet_train.load_part(text.clip_l.transformer, unet_demo, CLIP_PREFIX)
        init_dit(dm)
        init_t5(text.t5.transformer)
        pretrain_t5(text, args.text_steps, args.text_batch, args.seed + 50)
    text.clip_l.transformer.eval().requires_grad_(False)
    train_flow(dm, text, latents, scenes, args.steps, args.batch, args.seed + 40, args.lr,
               checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
               text_lr_scale=args.text_lr_scale, continuing=bool(init) and not args.new_text,
               pooled_dropout=args.pooled_dropout)
    training = {k: v for k, v in vars(args).items() if k not in ("out", "checkpoint", "init_from", "unet_demo")} | {
        "flux_shift": FLUX_SHIFT, "minutes": round((time.time() - t_start) / 60, 1), "torch": torch.__version__}
    if init:  # the first schedule's record, so the file says how to rebuild it
        training = {"continued_from": init[1]["training"]} | training
    save(args.out, dm, clip, ae, {"architecture": architecture_record(), "training": training})
    return 0


if __name__ == "__main__":
    sys.exit(main())
