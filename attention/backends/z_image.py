"""Z-Image (comfy/ldm/lumina/model.py `NextDiT` with pad_tokens_multiple): a text-only context refiner and an
image-only noise refiner (no block ids; they run plain: no text attends to the image there), then the main
layers on cat(text, image), block ids "double" + index. The text is padded with a learned token to a multiple of
`pad_tokens_multiple` (32) before the refiner, so the text span in attention is the conditioning rounded up."""
from .joint import JointFamily

FAMILY = JointFamily("ZImage", ("comfy.ldm.lumina.model", "NextDiT"), (("double", "layers"),),
                     text_pad_multiple="pad_tokens_multiple")
