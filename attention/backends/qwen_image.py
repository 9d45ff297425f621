"""Qwen-Image (comfy/ldm/qwen_image/model.py): text first in every transformer block, block ids "double" + index."""
from .joint import JointFamily

FAMILY = JointFamily("QwenImage", ("comfy.ldm.qwen_image.model", "QwenImageTransformer2DModel"),
                     (("double", "transformer_blocks"),))
