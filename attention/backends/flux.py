"""Flux.1 (ComfyUI 0.8 comfy/ldm/flux/model.py `Flux`): double blocks on [txt, img], single blocks on cat(txt, img);
block_type "double" / "single" and block_index set per block. Subclasses (Chroma is not one) are other families."""
from .joint import JointFamily

FAMILY = JointFamily("Flux", ("comfy.ldm.flux.model", "Flux"),
                     (("double", "double_blocks"), ("single", "single_blocks")))
