"""pix2pix-zero nodes. The cross-attention guided sampler lives here; caption and edit-direction nodes too."""
from __future__ import annotations

import logging

from comfy_api.latest import io

from ..attention.p2p_plan import InputError
from .checks import require_editable_model, require_latent

log = logging.getLogger("comfyui-attention-edit")
CATEGORY = "attention_edit/pix2pix_zero"
MODES = ["real image (latent = inverted x_T)", "synthetic (latent = empty, seeded noise)"]


class CrossAttnGuidedSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import comfy.samplers

        return io.Schema(
            node_id="AttnEdit_CrossAttnGuidedSampler",
            display_name="pix2pix-zero Cross-Attention Guided Sampler",
            category=CATEGORY,
            description="Samples the reconstruction (caption) and the edit (caption + edit direction) in lockstep; "
                        "each step pulls the edit's cross-attention maps towards the reconstruction's so the "
                        "structure of the image survives the edit (pix2pix-zero §3.2).",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive", tooltip="The caption (reference / reconstruction branch)."),
                io.Conditioning.Input("edit_positive", tooltip="The caption with the edit direction applied."),
                io.Conditioning.Input("negative", tooltip="Official real-image edit: the caption itself."),
                io.Latent.Input("latent", tooltip="x_T from an inversion node, or an empty latent in synthetic mode."),
                io.Sigmas.Input("sigmas", optional=True, tooltip="The inversion node's SIGMAS (else steps/scheduler)."),
                io.Int.Input("steps", default=50, min=1, max=1000, optional=True),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="ddim_uniform",
                               optional=True),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1),
                io.Float.Input("xa_guidance", default=0.1, min=0.0, max=10.0, step=0.01,
                               tooltip="Cross-attention guidance step (official: 0.1 real, 0.15 synthetic). "
                                       "Applied x0.1 on v-prediction models (SD2), as the diffusers port advises."),
                io.Combo.Input("mode", options=MODES, default=MODES[0], optional=True),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, optional=True,
                             control_after_generate=True, tooltip="Synthetic mode: the starting noise."),
            ],
            outputs=[io.Latent.Output(display_name="edit"), io.Latent.Output(display_name="reconstruction")],
        )

    @classmethod
    def execute(cls, model, positive, edit_positive, negative, latent, cfg, xa_guidance, sigmas=None, steps=50,
                scheduler="ddim_uniform", mode=MODES[0], seed=0):
        import comfy.sample

        from ..attention.comfy_guided_sampler import guided_sample
        from ..inversion.comfy_adapter import schedule

        node = "AttnEdit_CrossAttnGuidedSampler"
        require_editable_model(node, model)
        _require_same_length(node, positive, edit_positive)
        if xa_guidance < 0:
            raise InputError(node, "xa_guidance", "must be >= 0 (0 turns guidance off).")
        require_latent(node, model, latent, single=True)
        samples = latent["samples"]
        if sigmas is None:
            sigmas = schedule(model, steps, scheduler)
        noise = None
        if mode == MODES[1]:
            noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
        edit, reference, stats = guided_sample(model, positive, edit_positive, negative, latent, sigmas, cfg,
                                               xa_guidance, noise=noise, seed=seed)
        if stats["skipped"] or stats["clipped"]:
            log.warning("%s: guidance skipped %d non-finite steps and scaled down %d oversized updates.", node,
                        stats["skipped"], stats["clipped"])
        distances = stats["distances"]
        text = (f"mean cross-attention map distance edit vs reconstruction: "
                f"{sum(distances) / max(len(distances), 1):.4g} (xa {stats['xa_effective']:g})")
        base = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
        return io.NodeOutput({**base, "samples": edit}, {**base, "samples": reference}, ui={"text": [text]})


def _require_same_length(node: str, positive, edit_positive) -> None:
    """The two branches' maps are compared token by token, so their conditionings need one length."""
    ref = {int(c[0].shape[1]) for c in positive}
    edit = {int(c[0].shape[1]) for c in edit_positive}
    if ref != edit:
        raise InputError(node, "edit_positive", f"it has {sorted(edit)} tokens where positive has {sorted(ref)}: the "
                                                "two branches' attention maps are compared token by token. Make it "
                                                "with Apply Edit Direction from the caption's conditioning, or use "
                                                "prompts of the same length.")


def _blip_folders() -> list[str]:
    import os

    import folder_paths

    names = []
    for root in folder_paths.get_folder_paths("blip"):
        if os.path.isdir(root):
            names += sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    return names or [NO_BLIP]


NO_BLIP = "(no model folder in models/blip)"


def _blip_path(name: str) -> str:
    import os

    import folder_paths

    for root in folder_paths.get_folder_paths("blip"):
        if os.path.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return os.path.join(folder_paths.get_folder_paths("blip")[0], name)


class BLIPCaption(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_BLIPCaption",
            display_name="BLIP Caption",
            category=CATEGORY,
            description="Captions each image with a BLIP captioner (HF format, models/blip/<name>/), offline. "
                        "pix2pix-zero uses the caption as the inversion prompt and the edit's negative prompt.",
            inputs=[
                io.Image.Input("image"),
                io.Combo.Input("blip_model", options=_blip_folders(),
                               tooltip="A folder under models/blip holding e.g. Salesforce/blip-image-captioning-base."),
                io.String.Input("prefix", default="", optional=True,
                                tooltip="Conditional captioning: the caption starts with this text."),
                io.Int.Input("max_new_tokens", default=30, min=1, max=200, optional=True),
            ],
            outputs=[io.String.Output(display_name="caption", is_output_list=True)],
        )

    @classmethod
    def execute(cls, image, blip_model, prefix="", max_new_tokens=30):
        import comfy.model_management

        from ..captioning.blip import BlipModelMissing, caption_images

        node = "AttnEdit_BLIPCaption"
        path = _blip_path(blip_model)
        try:
            captions = caption_images(path, image, prefix or "", max_new_tokens,
                                      device=comfy.model_management.get_torch_device())
        except BlipModelMissing as e:
            raise InputError(node, "blip_model", str(e)) from None
        return io.NodeOutput(captions)


EditDirectionType = io.Custom("EDIT_DIRECTION")


def _sentences(node: str, input_name: str, text: str) -> list[str]:
    from ..directions.templates import parse_sentences

    sentences = parse_sentences(text)
    if not sentences:
        raise InputError(node, input_name, "no sentences: write one sentence per line, or a single concept word "
                                           "(e.g. 'cat') to use the pack's sentence templates.")
    if len(sentences) == 1:
        log.warning("%s: '%s' holds a single sentence; the pix2pix-zero authors advise hundreds to a thousand "
                    "sentences per concept (few sentences give entangled directions).", node, input_name)
    return sentences


class EditDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_EditDirection",
            display_name="Edit Direction (sentence sets)",
            category=CATEGORY,
            description="Mean text embedding of the target sentences minus that of the source sentences "
                        "(pix2pix-zero §3.2). A field with one word (e.g. 'cat') is expanded with the pack's "
                        "140 sentence templates.",
            inputs=[io.Clip.Input("clip"),
                    io.String.Input("source", multiline=True, default="cat"),
                    io.String.Input("target", multiline=True, default="dog")],
            outputs=[EditDirectionType.Output(display_name="edit_direction")],
        )

    @classmethod
    def execute(cls, clip, source, target):
        import comfy.utils

        from .clip_prompts import is_clip_only

        node = "AttnEdit_EditDirection"
        src, tgt = _sentences(node, "source", source), _sentences(node, "target", target)
        pbar = comfy.utils.ProgressBar(len(src) + len(tgt))
        if is_clip_only(clip):
            return io.NodeOutput(_clip_direction(clip, src, tgt, source, target, pbar))
        return io.NodeOutput(_any_encoder_direction(node, clip, src, tgt, source, target, pbar))


def _clip_direction(clip, src, tgt, source, target, pbar):
    """SD1.x / SD2.x / SDXL: per-position means over CLIP's 77 tokens, batched (and SDXL's pooled vector)."""
    from ..directions.direction import compute_direction, mean_embedding
    from .clip_prompts import encode_sentences, encoder_id

    probe, pooled_probe = clip.encode_from_tokens(clip.tokenize(src[0]), return_pooled=True)
    with_pooled = pooled_probe is not None and type(clip.cond_stage_model).__name__.startswith("SDXL")
    src_c, src_p = encode_sentences(clip, src, with_pooled, lambda n: pbar.update_absolute(n))
    tgt_c, tgt_p = encode_sentences(clip, tgt, with_pooled, lambda n: pbar.update_absolute(len(src) + n))
    width = probe.shape[-1]
    return compute_direction(
        mean_embedding([src_c]), mean_embedding([tgt_c]),
        mean_embedding([src_p]) if with_pooled else None, mean_embedding([tgt_p]) if with_pooled else None,
        encoder_id(clip, width), width, _describe(source), _describe(target), len(src), len(tgt))


def _any_encoder_direction(node, clip, src, tgt, source, target, pbar):
    """Transformer models' encoders: per-position means when every sentence (source and target) encodes to one
    length (the encoder pads), else each sentence's mean token (directions/direction.py, alignment)."""
    from ..directions.direction import MEAN, POSITION, compute_direction
    from .clip_prompts import encoder_id, sentence_means

    a = sentence_means(clip, src, lambda n: pbar.update_absolute(n))
    b = sentence_means(clip, tgt, lambda n: pbar.update_absolute(len(src) + n))
    aligned = a.per_position is not None and b.per_position is not None and \
        a.per_position.shape == b.per_position.shape
    src_mean, tgt_mean = (a.per_position, b.per_position) if aligned else (a.token_mean, b.token_mean)
    if not aligned:
        log.info("%s: the sentences encode to different lengths (this encoder does not pad), so the direction is "
                 "the difference of their mean tokens, added to every token.", node)
    with_pooled = a.pooled is not None and b.pooled is not None
    width = src_mean.shape[-1]
    return compute_direction(src_mean, tgt_mean, a.pooled if with_pooled else None,
                             b.pooled if with_pooled else None, encoder_id(clip, width), width, _describe(source),
                             _describe(target), len(src), len(tgt), alignment=POSITION if aligned else MEAN,
                             fingerprint=False)


def _describe(text: str) -> str:
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[0] if len(lines) == 1 else f"{lines[0]} (+{len(lines) - 1} sentences)"


class ApplyEditDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_ApplyEditDirection",
            display_name="Apply Edit Direction",
            category=CATEGORY,
            inputs=[io.Conditioning.Input("conditioning"), EditDirectionType.Input("edit_direction"),
                    io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.05)],
            outputs=[io.Conditioning.Output()],
        )

    @classmethod
    def execute(cls, conditioning, edit_direction, strength):
        from ..directions.direction import DirectionMismatch, DirectionNotFinite, apply_direction

        out = []
        for cond, extras in conditioning:
            try:
                new_cond, new_pooled = apply_direction(cond, extras.get("pooled_output"), edit_direction, strength)
            except (DirectionMismatch, DirectionNotFinite) as e:
                raise InputError("AttnEdit_ApplyEditDirection", "edit_direction", str(e)) from None
            extras = dict(extras)
            if new_pooled is not None:
                extras["pooled_output"] = new_pooled
            out.append([new_cond, extras])
        return io.NodeOutput(out)


def _direction_files() -> list[str]:
    import folder_paths

    return [f for f in folder_paths.get_filename_list("edit_directions") if f.endswith(".safetensors")]


class SaveEditDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_SaveEditDirection",
            display_name="Save Edit Direction",
            category=CATEGORY,
            is_output_node=True,
            inputs=[EditDirectionType.Input("edit_direction"),
                    io.String.Input("name", default="cat_to_dog", tooltip="File name under models/edit_directions.")],
            outputs=[],
        )

    @classmethod
    def execute(cls, edit_direction, name):
        import os
        import re

        import folder_paths

        from ..directions.direction import save_direction

        stem = re.sub(r"[^A-Za-z0-9_.+-]", "_", name.strip()).strip(".")
        if not stem:
            raise InputError("AttnEdit_SaveEditDirection", "name", "give a file name, e.g. 'cat_to_dog'.")
        if not stem.endswith(".safetensors"):
            stem += ".safetensors"
        path = os.path.join(folder_paths.get_folder_paths("edit_directions")[0], stem)
        save_direction(path, edit_direction)
        return io.NodeOutput(ui={"text": [f"saved {path}"]})


class LoadEditDirection(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="AttnEdit_LoadEditDirection",
            display_name="Load Edit Direction",
            category=CATEGORY,
            inputs=[io.Combo.Input("name", options=_direction_files())],
            outputs=[EditDirectionType.Output(display_name="edit_direction")],
        )

    @classmethod
    def fingerprint_inputs(cls, name):
        import os

        import folder_paths

        path = folder_paths.get_full_path("edit_directions", name)
        return os.path.getmtime(path) if path else name

    @classmethod
    def execute(cls, name):
        import folder_paths

        from ..directions.direction import DirectionFileError, load_direction

        path = folder_paths.get_full_path("edit_directions", name)
        if path is None:
            raise InputError("AttnEdit_LoadEditDirection", "name", f"no file '{name}' under models/edit_directions.")
        try:
            return io.NodeOutput(load_direction(path))
        except DirectionFileError as e:
            raise InputError("AttnEdit_LoadEditDirection", "name", str(e)) from None


NODES = [BLIPCaption, EditDirection, ApplyEditDirection, SaveEditDirection, LoadEditDirection, CrossAttnGuidedSampler]
