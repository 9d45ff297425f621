"""Train the demo model on demo_world: VAE, then UNet + text encoder together. Deterministic, CPU.

    python -m demo_model.train --out demo_model/attn_edit_demo.safetensors

Phase 1 trains the autoencoder on crops of fresh renders (MSE + L1 + a small KL), then folds a gain into quant_conv /
post_quant_conv so the latents times SD1.5's 0.18215 have unit variance. Phase 2 renders and encodes a pool
of scenes once and trains the UNet and the text encoder from scratch with the eps objective on SD's
scaled-linear 1000-step schedule (Min-SNR-5 weights, Hang et al. 2023), random caption paraphrases with
some attributes left out, 10 % empty captions for classifier-free guidance, and an EMA of the weights,
which is what gets saved (fp16, standard SD1.x keys, the architecture in the file's metadata).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import replace
from multiprocessing import Pool

import numpy as np
import torch

from demo_model import architecture as arch
from demo_world import scene as world

SD15_SCALE = 0.18215
CAPTION_DROPOUT = 0.1
ATTRIBUTE_DROPOUT = 0.1  # per object, each of size and colour
# Offset noise (Guttenberg 2023): a per-channel constant added to eps. This VAE encodes the background colour
# as channel means (white vs black differ by ~3 per channel), and SD's schedule keeps sqrt(acp_T) = 0.068 of
# the signal at t = 999, so without it the model reads the background from the mean of x_T (0.2 against
# noise of 1/16) instead of from the caption: at inference the seed, not the text, picks the background.
# Only at high t, ramping in from OFFSET_RAMP[0] to full at OFFSET_RAMP[1]: that is where the background is
# decided from the caption; below it an offset in eps is indistinguishable from a global colour shift of the
# image, and a run with offset noise at every t (run 3) learnt the objects' colours worse (19 % vs 50 %).
OFFSET_NOISE = 0.2
OFFSET_RAMP = (700, 900)
# Half of the timesteps drawn from [HIGH_T, 1000): that is where the caption decides layout, shape and colour
# (below it the noisy latent already shows them); runs 1-4 with uniform t learnt the background word but drew
# shapes and sizes at chance. Min-SNR weights are applied on top, as before.
HIGH_T = 400


def _render(args) -> np.ndarray:
    seed, n = args
    rng = np.random.default_rng(seed)
    scenes = [world.random_scene(rng) for _ in range(n)]
    return np.stack([world.render(s, arch.IMAGE_SIZE, supersample=2) for s in scenes]), scenes


def render_pool(seed: int, n: int, chunk: int = 500, workers: int = 2):
    """n scenes and their images [n, H, W, 3] uint8, identical for any number of workers."""
    jobs = [(seed * 100003 + i, min(chunk, n - i * chunk)) for i in range((n + chunk - 1) // chunk)]
    with Pool(workers) as pool:
        parts = pool.map(_render, jobs)
    return np.concatenate([p[0] for p in parts]), [s for p in parts for s in p[1]]


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def training_caption(scene: world.Scene, rng: np.random.Generator) -> str:
    if rng.random() < CAPTION_DROPOUT:
        return ""
    objects = [replace(o, size=None if rng.random() < ATTRIBUTE_DROPOUT else o.size,
                       colour=None if rng.random() < ATTRIBUTE_DROPOUT else o.colour) for o in scene.objects]
    return world.random_caption(world.Scene(objects, scene.background), rng)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- phase 1: autoencoder

def vae_moments(ae, x):
    mean, logvar = ae.quant_conv(ae.encoder(x)).chunk(2, dim=1)
    return mean, logvar.clamp(-30, 20)


def vae_decode(ae, z):
    return ae.decoder(ae.post_quant_conv(z))


def train_vae(ae, steps: int, batch: int, seed: int, lr: float = 3e-3, kl_weight: float = 1e-6,
              crop: int = 64):
    """MSE + L1 + a small KL on random crops (aligned to the 8-pixel latent grid; the networks are
    convolutional, so crops teach the same decoding at a quarter of the cost of whole images)."""
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    images, _ = render_pool(seed, steps * batch // 4)  # each render seen ~4 times
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for step in range(steps):
        idx = torch.randint(len(images), (batch,), generator=g)
        x = to_tensor(images[idx.numpy()])
        oy, ox = (torch.randint((x.shape[-1] - crop) // 8 + 1, (2,), generator=g) * 8).tolist()
        x = x[:, :, oy:oy + crop, ox:ox + crop]
        mean, logvar = vae_moments(ae, x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=g)
        rec = vae_decode(ae, z)
        mse = torch.mean((rec - x) ** 2)
        kl = 0.5 * torch.mean(mean ** 2 + logvar.exp() - 1 - logvar)
        loss = mse + torch.mean((rec - x).abs()) + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            psnr = 10 * math.log10(4 / max(mse.item(), 1e-10))
            log(f"vae {step}/{steps} mse {mse.item():.5f} ({psnr:.1f} dB) kl {kl.item():.2f} "
                f"{(step + 1) * batch / (time.time() - t0):.1f} img/s")


@torch.no_grad()
def normalise_latents(ae, seed: int) -> float:
    """Fold a gain into the VAE so that (latent * 0.18215) has unit std; returns the gain."""
    images, _ = render_pool(seed, 512)
    mean, _ = vae_moments(ae, to_tensor(images))
    gain = 1.0 / (SD15_SCALE * mean.std().item())
    e = ae.embed_dim
    ae.quant_conv.weight[:e] *= gain
    ae.quant_conv.bias[:e] *= gain
    ae.quant_conv.bias[e:] += 2 * math.log(gain)  # logvar of the scaled posterior
    ae.post_quant_conv.weight /= gain
    return gain


# ---------------------------------------------------------------- phase 2: UNet + text encoder

class Tokens:
    """Caption -> CLIP BPE ids [77] with ComfyUI's SD1 tokenizer (cached: captions repeat)."""

    def __init__(self):
        import comfy.sd1_clip
        self.tokenizer = comfy.sd1_clip.SD1Tokenizer()
        self.cache: dict[str, list[int]] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        rows = []
        for t in texts:
            if t not in self.cache:
                self.cache[t] = [int(p[0]) for p in self.tokenizer.tokenize_with_weights(t)["l"][0]]
            rows.append(self.cache[t])
        return torch.tensor(rows)


def text_forward(tm, ids: torch.Tensor) -> torch.Tensor:
    """ComfyUI's CLIPTextModel_ forward (causal mask, quick-GELU, final LN) written without its in-place
    residual adds, which autograd cannot differentiate through. check_text_forward pins it to ComfyUI's."""
    import torch.nn.functional as F

    x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding.weight[: ids.shape[1]]
    n = ids.shape[1]
    causal = torch.full((n, n), float("-inf")).triu_(1)
    for layer in tm.encoder.layers:
        a = layer.self_attn
        h = layer.layer_norm1(x)
        q, k, v = (p(h).unflatten(-1, (a.heads, -1)).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=causal).transpose(1, 2).flatten(2)
        x = x + a.out_proj(o)
        h = layer.mlp.fc1(layer.layer_norm2(x))
        x = x + layer.mlp.fc2(h * torch.sigmoid(1.702 * h))
    return tm.final_layer_norm(x)


@torch.no_grad()
def check_text_forward(tm, tokens: "Tokens") -> float:
    ids = tokens(["a large red circle on a gray background", "", "a blue square and a small pink cross"])
    ref = tm(ids)[0]
    err = (text_forward(tm, ids) - ref).abs().max().item()
    if err > 1e-4:
        raise RuntimeError(f"training text forward differs from ComfyUI's by {err}")
    return err


# ---------------------------------------------------------------- phase 2a: text encoder

SHAPE_CLASSES = list(world.SHAPES) + [None]  # None: no such object
COLOUR_CLASSES = [None] + list(world.COLOURS)  # None: colour not named
SIZE_CLASSES = [None] + list(world.SIZES)
BG_CLASSES = [None] + list(world.BACKGROUNDS)
ABSENT_OBJECT = (SHAPE_CLASSES.index(None), COLOUR_CLASSES.index(None), SIZE_CLASSES.index(None))
TEXT_HEADS = {"shape": len(SHAPE_CLASSES), "colour": len(COLOUR_CLASSES), "size": len(SIZE_CLASSES),
              "bg": len(BG_CLASSES), "count": 3,
              **{f"{a}{k}": n for k in range(2) for a, n in (("shape", len(SHAPE_CLASSES)),
                                                            ("colour", len(COLOUR_CLASSES)),
                                                            ("size", len(SIZE_CLASSES)))}}


def caption_targets(ids: list[int], vocab: dict[int, tuple[str, str]]) -> dict[str, list[int]]:
    """Per-token classification targets for a caption's token ids (-100 where a head is not asked).

    At a shape word: that object's shape, colour and size (the words before it in its phrase; "none" where
    the caption leaves one out). At the word "background": the background. From the end token on (the end
    token and the padding, which see the whole caption): the number of objects, each object's attributes
    left to right and the background. The words of demo_world are single CLIP tokens, so this reads the ids.
    """
    n = len(ids)
    t = {k: [-100] * n for k in TEXT_HEADS}
    objects: list[tuple[int, int, int]] = []
    colour = size = bg = None
    end = n
    for i, tok in enumerate(ids):
        kind, word = vocab.get(tok, ("", ""))
        if kind == "end":
            end = i
            break
        if kind == "size":
            size = word
        elif kind == "colour":
            colour = word
        elif kind == "background":
            bg = word
        elif kind == "background_word" and bg is not None:
            t["bg"][i] = BG_CLASSES.index(bg)
        elif kind == "shape":
            obj = (SHAPE_CLASSES.index(word), COLOUR_CLASSES.index(colour), SIZE_CLASSES.index(size))
            t["shape"][i], t["colour"][i], t["size"][i] = obj
            objects.append(obj)
            colour = size = None
    for i in range(end, n):
        t["count"][i] = min(len(objects), 2)
        t["bg"][i] = BG_CLASSES.index(bg)
        for k in range(2):
            shape, colour_, size_ = objects[k] if k < len(objects) else ABSENT_OBJECT
            t[f"shape{k}"][i], t[f"colour{k}"][i], t[f"size{k}"][i] = shape, colour_, size_
    return t


def caption_vocab(tokens: "Tokens") -> dict[int, tuple[str, str]]:
    words = [("shape", w) for w in world.SHAPES] + [("colour", w) for w in world.COLOURS] + \
            [("size", w) for w in world.SIZES] + [("background", w) for w in world.BACKGROUNDS] + \
            [("background_word", "background")]
    vocab = {}
    for kind, word in words:
        ids = tokens([word])[0].tolist()
        if ids[2] != ids[-1]:
            raise RuntimeError(f"{word!r} is not one CLIP token")
        vocab[ids[1]] = (kind, word)
    vocab[ids[-1]] = ("end", "")
    return vocab


def pretrain_text(text, tokens: "Tokens", steps: int, batch: int, seed: int, lr: float = 2e-3) -> None:
    """Supervised warm start of the text encoder: linear probes on its output tokens must read back each
    object's attributes (at its shape word and, for the whole scene, at the end token and padding). A text
    encoder trained from scratch by the diffusion loss alone learns this far too slowly on a CPU budget (the
    UNet first has to learn to listen); SD itself starts from a pretrained CLIP. The probes are discarded."""
    import torch.nn.functional as F

    if steps <= 0:
        return
    text.train().requires_grad_(True)  # ComfyUI builds its models with gradients off
    width = text.final_layer_norm.weight.shape[0]
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        heads = torch.nn.ModuleDict({k: torch.nn.Linear(width, n) for k, n in TEXT_HEADS.items()})
    params = list(text.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    vocab = caption_vocab(tokens)
    for step in range(steps):
        captions = [training_caption(world.random_scene(rng), rng) for _ in range(batch)]
        ids = tokens(captions)
        targets = [caption_targets(row, vocab) for row in ids.tolist()]
        want = {k: torch.tensor([t[k] for t in targets]) for k in heads}
        h = text_forward(text, ids)
        logits = {k: head(h) for k, head in heads.items()}
        loss = sum(F.cross_entropy(logits[k].flatten(0, 1), want[k].flatten(), ignore_index=-100) for k in heads)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            asked = {k: w != -100 for k, w in want.items()}
            acc = {k: (logits[k].argmax(-1)[asked[k]] == want[k][asked[k]]).float().mean().item() for k in heads}
            log(f"text {step}/{steps} loss {loss.item():.4f} min probe accuracy {min(acc.values()):.3f} "
                f"({min(acc, key=acc.get)})")


def sd_alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2  # scaled linear
    return torch.cumprod(1 - betas, 0).float()


class EMA:
    def __init__(self, modules, decay: float, warmup: bool = True):
        self.params = [p for m in modules for p in m.parameters()]
        self.shadow = [p.detach().clone() for p in self.params]
        self.decay = decay
        self.warmup = warmup  # off when continuing from trained weights: the shadow starts from them

    @torch.no_grad()
    def update(self, step: int):
        d = min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay
        for s, p in zip(self.shadow, self.params):
            s.lerp_(p.detach(), 1 - d)

    @torch.no_grad()
    def copy_to_model(self):
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)


def save_training_state(path: str, modules: dict, opt, sched, ema: EMA, g: torch.Generator,
                        rng: np.random.Generator, step: int, running: float) -> None:
    """Everything a run needs to resume exactly (modules by name, optimiser, schedule, EMA, both generators);
    written to a temporary file first, so an interrupted write never leaves a broken checkpoint."""
    tmp = path + ".tmp"
    torch.save({**{name: m.state_dict() for name, m in modules.items()}, "opt": opt.state_dict(),
                "sched": sched.state_dict(), "ema": ema.shadow, "g": g.get_state(), "rng": rng.bit_generator.state,
                "step": step, "running": running}, tmp)
    os.replace(tmp, path)


def load_training_state(path: str, modules: dict, opt, sched, ema: EMA, g: torch.Generator,
                        rng: np.random.Generator) -> tuple[int, float]:
    """Restore what save_training_state wrote; returns (step to start from, running loss)."""
    state = torch.load(path, weights_only=False)
    for name, m in modules.items():
        m.load_state_dict(state[name])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    for s, v in zip(ema.shadow, state["ema"]):
        s.copy_(v)
    g.set_state(state["g"])
    rng.bit_generator.state = state["rng"]
    log(f"resumed from {path} at step {state['step']}")
    return state["step"], state["running"]


@torch.no_grad()
def encode_pool(ae, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    out = [vae_moments(ae, to_tensor(images[i:i + batch]))[0] for i in range(0, len(images), batch)]
    return torch.cat(out) * SD15_SCALE


def train_diffusion(unet, text, latents, scenes, steps: int, batch: int, seed: int, lr: float = 1e-3,
                    ema_decay: float = 0.999, snr_gamma: float = 5.0, checkpoint: str | None = None,
                    checkpoint_every: int = 500, offset_noise: float = OFFSET_NOISE, text_lr_scale: float = 0.2,
                    high_t_share: float = 0.5, warmup_share: float = 0.03, continuing: bool = False):
    """continuing: the networks hold trained weights (--init-from), so the EMA starts from them at full decay.
    With checkpoint, the full training state is written there every checkpoint_every steps and a run
    resumes from it when it exists (same arguments), ending with the same weights as an unbroken run.
    Returns the step it started from."""
    tokens = Tokens()
    log(f"text forward matches ComfyUI's to {check_text_forward(text, tokens):.1e}")
    groups = [list(unet.parameters()), list(text.parameters())]
    params = groups[0] + groups[1]
    opt = torch.optim.AdamW([{"params": g} for g in groups], lr=lr, weight_decay=0.01, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [lr, lr * text_lr_scale], total_steps=steps,
                                                pct_start=warmup_share, final_div_factor=20)
    ema = EMA([unet, text], ema_decay, warmup=not continuing)
    acp = sd_alphas_cumprod()
    snr = acp / (1 - acp)
    weight = torch.clamp(snr, max=snr_gamma) / snr
    ramp = (torch.arange(1000) - OFFSET_RAMP[0]) / (OFFSET_RAMP[1] - OFFSET_RAMP[0])
    offset_scale = offset_noise * ramp.clamp(0, 1)
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    t0, running, start = time.time(), 0.0, 0
    if checkpoint and os.path.exists(checkpoint):
        start, running = load_training_state(checkpoint, {"unet": unet, "text": text}, opt, sched, ema, g, rng)
    for step in range(start, steps):
        idx = torch.randint(len(latents), (batch,), generator=g)
        x0 = latents[idx]
        ids = tokens([training_caption(scenes[i], rng) for i in idx.tolist()])
        t = torch.randint(1000, (batch,), generator=g)
        t = torch.where(torch.rand(batch, generator=g) < high_t_share, HIGH_T + t * (1000 - HIGH_T) // 1000, t)
        eps = torch.randn(x0.shape, generator=g)
        eps = eps + offset_scale[t].view(-1, 1, 1, 1) * torch.randn(batch, x0.shape[1], 1, 1, generator=g)
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        context = text_forward(text, ids)
        pred = unet(xt, timesteps=t.float(), context=context)
        loss = (weight[t] * ((pred - eps) ** 2).mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.update(step)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if checkpoint and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_training_state(checkpoint, {"unet": unet, "text": text}, opt, sched, ema, g, rng, step + 1, running)
        if step % 100 == 0 or step == steps - 1:
            rate = (step - start + 1) / (time.time() - t0)
            log(f"diffusion {step}/{steps} loss {running:.4f} lr {sched.get_last_lr()[0]:.2e} "
                f"{rate * batch:.1f} samples/s, eta {(steps - step - 1) / rate / 60:.1f} min")
    ema.copy_to_model()
    return start


def save(path: str, unet, clip_text, ae, meta: dict) -> None:
    from safetensors.torch import save_file

    sd = {}
    for prefix, module in ((arch.UNET_PREFIX, unet), (arch.CLIP_PREFIX, clip_text), (arch.VAE_PREFIX, ae)):
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                sd[prefix + k] = v.detach().to(torch.float16).contiguous()
    save_file(sd, path, metadata={k: json.dumps(v) for k, v in meta.items()})
    log(f"saved {path}: {os.path.getsize(path) / 2 ** 20:.1f} MiB, {sum(v.numel() for v in sd.values()):,} params")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_model/attn_edit_demo.safetensors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--vae-checkpoint", help="reuse (or write) the phase-1 autoencoder here")
    p.add_argument("--vae-steps", type=int, default=1800)
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--pool", type=int, default=20000, help="scenes rendered and encoded for phase 2")
    p.add_argument("--steps", type=int, default=4800)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--offset-noise", type=float, default=OFFSET_NOISE)
    p.add_argument("--text-steps", type=int, default=400, help="supervised warm start of the text encoder")
    p.add_argument("--text-batch", type=int, default=128)
    p.add_argument("--text-lr-scale", type=float, default=0.2, help="text encoder lr / UNet lr in phase 2b")
    p.add_argument("--high-t-share", type=float, default=0.5, help=f"share of timesteps drawn from [{HIGH_T}, 1000)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", help="diffusion training state, written every --checkpoint-every steps; "
                                        "a run resumes from it when it exists")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--init-from", help="continue from a saved demo model (its VAE, UNet and text encoder; no VAE "
                                       "training, no text warm start): a second schedule of --steps at --lr")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    comfy_path_setup()

    t_start = time.time()
    ae = arch.autoencoder()
    init = read_weights(args.init_from) if args.init_from else None
    if init:
        load_part(ae, init[0], arch.VAE_PREFIX)
        log(f"continuing from {args.init_from}")
    elif args.vae_checkpoint and os.path.exists(args.vae_checkpoint):
        ae.load_state_dict(torch.load(args.vae_checkpoint))
        log(f"autoencoder from {args.vae_checkpoint}")
    else:
        init_weights(ae)
        train_vae(ae, args.vae_steps, args.vae_batch, args.seed + 10)
        gain = normalise_latents(ae, args.seed + 20)
        log(f"latent gain {gain:.3f}")
        if args.vae_checkpoint:
            torch.save(ae.state_dict(), args.vae_checkpoint)
    ae.eval().requires_grad_(False)

    images, scenes = render_pool(args.seed + 30, args.pool)
    latents = encode_pool(ae, images)
    del images
    log(f"pool: {len(scenes)} scenes, latent std {latents.std().item():.3f}")

    base = arch.unet_model()
    clip = arch.clip_model()
    unet, text = base.diffusion_model, arch.text_transformer(clip)
    if init:
        load_part(unet, init[0], arch.UNET_PREFIX)
        load_part(clip.cond_stage_model.clip_l.transformer, init[0], arch.CLIP_PREFIX)
    else:
        init_weights(unet, zero_outputs=True)
        init_weights(text)
    unet.train().requires_grad_(True)
    text.train().requires_grad_(True)
    if not init:
        pretrain_text(text, Tokens(), args.text_steps, args.text_batch, args.seed + 50)
    train_diffusion(unet, text, latents, scenes, args.steps, args.batch, args.seed + 40, args.lr,
                    checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                    offset_noise=args.offset_noise, text_lr_scale=args.text_lr_scale,
                    high_t_share=args.high_t_share, continuing=bool(init))
    training = {k: v for k, v in vars(args).items() if k not in ("out", "checkpoint", "init_from")} | {
        "offset_ramp": list(OFFSET_RAMP), "high_t": HIGH_T,
        "minutes": round((time.time() - t_start) / 60, 1), "torch": torch.__version__}
    if init:  # the first schedule's record, so the file says how to rebuild it
        training = {"continued_from": init[1]["training"]} | training
    meta = {"architecture": architecture_record(), "training": training}
    clip_text = clip.cond_stage_model.clip_l.transformer
    with torch.no_grad():  # SD1.x's UNet takes no pooled output; identity keeps it finite (ComfyUI leaves it unset)
        clip_text.text_projection.weight.copy_(torch.eye(*clip_text.text_projection.weight.shape))
    save(args.out, unet, clip_text, ae, meta)
    return 0


def architecture_record() -> dict:
    """What a saved file's 'architecture' metadata holds (the loader builds the model from it)."""
    return {"unet": arch.UNET_CONFIG, "clip": arch.CLIP_CONFIG, "vae": arch.VAE_CONFIG, "image_size": arch.IMAGE_SIZE}


def read_weights(path: str) -> tuple[dict, dict]:
    from pathlib import Path

    from demo_model import loader
    sd, meta = loader.read(Path(path))
    if meta["architecture"] != architecture_record():
        raise SystemExit(f"{path} has another architecture than demo_model/architecture.py")
    return sd, meta


def load_part(module: torch.nn.Module, sd: dict, prefix: str) -> None:
    """Load the float weights under prefix (fp16 in the file) into a float32 module; every float must match."""
    part = {k[len(prefix):]: v.float() for k, v in sd.items() if k.startswith(prefix)}
    missing, unexpected = module.load_state_dict(part, strict=False)
    floats = {k for k, v in module.state_dict().items() if v.is_floating_point()}
    if unexpected or floats & set(missing):
        raise SystemExit(f"{prefix}: weights do not match (missing {sorted(floats & set(missing))[:3]}, "
                         f"unexpected {unexpected[:3]})")


def init_weights(module: torch.nn.Module, zero_outputs: bool = False) -> None:
    """PyTorch's default initialisation, which ComfyUI's ops skip (docs/testing.md, pitfall 1); with zero_outputs
    the UNet's residual output projections start at zero, as in the original LDM code (its zero_module calls)."""
    for name, m in module.named_modules():
        for cls in (torch.nn.Linear, torch.nn.Conv2d, torch.nn.GroupNorm, torch.nn.LayerNorm):
            if isinstance(m, cls):
                cls.reset_parameters(m)
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight, std=0.02)
        if zero_outputs and re.search(r"(^out\.2|out_layers\.3|proj_out)$", name):
            torch.nn.init.zeros_(m.weight)
            torch.nn.init.zeros_(m.bias)


def comfy_path_setup() -> None:
    path = os.path.expanduser(os.environ.get("COMFYUI_PATH", "~/ComfyUI"))
    if path not in sys.path:
        sys.path.insert(0, path)
    from comfy.cli_args import args  # before comfy.model_management is imported
    args.cpu = True
    args.use_pytorch_cross_attention = True  # SDPA: much faster on the CPU than the default split attention


if __name__ == "__main__":
    sys.exit(main())
