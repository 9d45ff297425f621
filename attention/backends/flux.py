"""Flux.1 and Flux.2 (ComfyUI 0.8 comfy/ldm/flux/model.py `Flux`, one class): double blocks on [txt, img], single
blocks on cat(txt, img) (Flux.2's reference latents after the image); block_type "double" / "single" and
block_index set per block. Subclasses (Chroma is not one) are other families. Flux.2's text arrives left-padded to
512 by its model_base (Backend.text_padding finds it)."""
from .joint import JointFamily

FAMILY = JointFamily("Flux", ("comfy.ldm.flux.model", "Flux"),
                     (("double", "double_blocks"), ("single", "single_blocks")))
