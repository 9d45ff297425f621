"""AttnEdit_AttentionMaps: generate an image and show which pixels each prompt token attends to."""
from __future__ import annotations

import torch
from comfy_api.latest import io

from ..attention.p2p_plan import InputError

from ..attention.backends import backend_for
from ..attention.comfy_patch import patch_model
from ..attention.maps import LEVELS, MapRecorder, render_token_grid, word_masks
from ..attention.options import parse_mask_words
from ..attention.tokens import WordNotFound
from .checks import require_editable_model, require_latent
from .clip_prompts import encode_rows, fit_to_model, prompt_encoding

NODE = "AttnEdit_AttentionMaps"


class AttentionMaps(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import comfy.samplers

        return io.Schema(
            node_id=NODE,
            display_name="P2P Attention Maps",
            category="attention_edit/prompt_to_prompt",
            description="Samples the prompt (like KSampler) and returns a grid of per-token attention maps (P2P "
                        "paper, Fig. 4) and, for the words you name, their maps as masks. UNets: cross-attention "
                        "averaged over heads, the layers of the chosen resolution and all steps. Transformer models "
                        "(Flux, SD3, Qwen-Image): ConceptAttention's output maps of the later third of the blocks "
                        "over the second half of the steps.",
            inputs=[
                io.Model.Input("model"),
                io.Clip.Input("clip"),
                io.Latent.Input("latent"),
                io.String.Input("prompt", multiline=True),
                io.String.Input("negative", multiline=True, default=""),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True),
                io.Int.Input("steps", default=20, min=1, max=10000),
                io.Float.Input("cfg", default=7.5, min=0.0, max=100.0, step=0.1),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler"),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="normal"),
                io.Combo.Input("resolution", options=list(LEVELS), default="latent/4 (P2P)",
                               tooltip="UNets: which cross-attention layers to average: latent/4 is P2P's 16x16 "
                                       "at 512 px (SD1.x) and the 32x32 layers at 1024 px (SDXL). Transformer "
                                       "models have one token grid: this input does not apply."),
                io.Vae.Input("vae", optional=True, tooltip="If given, the maps are blended over the decoded image."),
                io.String.Input("mask_words", default="", optional=True,
                                tooltip="Words whose maps come out as the MASK batch, one mask per '|'-separated "
                                        "entry in that order (words joined by ',' share one mask), each scaled to "
                                        "0-1 at the image's size: 'cat | red, ball'. Empty = one empty mask."),
                io.Int.Input("tile_size", default=128, min=32, max=512, optional=True),
                io.Int.Input("columns", default=8, min=1, max=32, optional=True),
            ],
            outputs=[io.Image.Output(display_name="maps"), io.Latent.Output(display_name="LATENT"),
                     io.Mask.Output(display_name="masks")],
        )

    @classmethod
    def execute(cls, model, clip, latent, prompt, negative, seed, steps, cfg, sampler_name, scheduler, resolution,
                vae=None, tile_size=128, columns=8, mask_words=""):
        import nodes

        require_editable_model(NODE, model)
        require_latent(NODE, model, latent)
        encoding = fit_to_model([prompt_encoding(clip, prompt, NODE, "prompt")], backend_for(model), model)[0]
        try:
            groups = parse_mask_words(mask_words or "")
            mask_slots = [sorted({s for word in group for s in encoding.phrase_slots(word)}) for group in groups]
        except (ValueError, WordNotFound) as e:
            raise InputError(NODE, "mask_words", str(e)) from None
        recorder = MapRecorder(NODE, LEVELS[resolution], encoding.text_len)
        patched = patch_model(model, recorder)
        positive = encode_rows(clip, [prompt])
        negative_cond = encode_rows(clip, [negative])
        (out,) = nodes.common_ksampler(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative_cond,
                                       latent)
        result = recorder.take_result()
        if "maps" not in result:
            raise InputError(NODE, "model", "the sampler never reached the model's attention; nothing was recorded.")
        maps = result["maps"][0]  # first latent row: [T, H, W]; a video's [T, F, h, w]
        if maps.ndim == 4:
            return _video_maps(model, maps, encoding, mask_slots, out, vae, tile_size, columns)
        image = vae.decode(out["samples"][:1])[0] if vae is not None else None
        if backend_for(model).family == "UNet":  # one tile per CLIP token, as the P2P paper's Fig. 4
            hf = encoding.segments[0][0].tokenizer.tokenizer
            labels, tiles = [], []
            for seg, pt in encoding.segments:  # a long prompt's chunks, each BOS, its tokens, EOS, padding
                labels += [hf.decode([t]).strip() or "·" for t in pt.ids]
                tiles.append(maps[seg.offset + 1:seg.offset + 1 + len(pt.ids)])
            tiles = torch.cat(tiles)
        else:  # one tile per word: a T5 / LLM word is often several tokens, some of them bare word-start marks
            words, labels = _word_labels(encoding)
            tiles = torch.stack([maps[encoding.word_slots(i)].sum(0) for i in words])
        grid = render_token_grid(tiles, labels, image, tile_size, columns)
        size = tuple(image.shape[:2]) if image is not None else _pixel_size(model, out["samples"])
        return io.NodeOutput(grid[None], out, word_masks(maps, mask_slots, size))


NODES = [AttentionMaps]


# Latent formats whose VAE downscales 16x (Flux.2: EmptyFlux2LatentImage; Wan 2.2 5B); the others 8x
SIXTEEN_X = ("Flux2", "Wan22")


def _pixel_size(model, samples) -> tuple[int, int]:
    """The image size of a latent when no VAE is given (the masks' size)."""
    scale = 16 if type(model.model.latent_format).__name__ in SIXTEEN_X else 8
    return tuple(scale * s for s in samples.shape[-2:])


def _word_labels(encoding) -> tuple[list[int], list[str]]:
    words = [i for i, w in enumerate(encoding.primary.words) if not w.is_punctuation]
    return words, [encoding.primary.words[i].text for i in words]


def _video_maps(model, maps, encoding, mask_slots, out, vae, tile_size: int, columns: int):
    """A video's maps [T, F, h, w]: one labelled grid per latent frame (an IMAGE batch, over the decoded frame the
    latent frame starts: Wan's VAE decodes F latent frames to 4(F-1)+1), and the word masks of the frame-averaged
    maps (one per named word, as for an image)."""
    words, labels = _word_labels(encoding)
    frames = maps.shape[1]
    pixels = None
    if vae is not None:
        decoded = vae.decode(out["samples"][:1])
        pixels = decoded.reshape(-1, *decoded.shape[-3:])  # [P, H, W, 3]
    grids = []
    for f in range(frames):
        image = None
        if pixels is not None:
            image = pixels[round(f * (len(pixels) - 1) / max(frames - 1, 1))]
        tiles = torch.stack([maps[encoding.word_slots(i), f].sum(0) for i in words])
        grids.append(render_token_grid(tiles, labels, image, tile_size, columns))
    size = tuple(pixels.shape[1:3]) if pixels is not None else _pixel_size(model, out["samples"])
    return io.NodeOutput(torch.stack(grids), out, word_masks(maps.mean(1), mask_slots, size))
