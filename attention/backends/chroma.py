"""Chroma (comfy/ldm/chroma/model.py `Chroma`, a module of its own, not a Flux subclass): Flux's double and single
blocks with modulation from a distilled approximator; text (T5, unpadded) first; block ids as Flux."""
from .joint import JointFamily

FAMILY = JointFamily("Chroma", ("comfy.ldm.chroma.model", "Chroma"),
                     (("double", "double_blocks"), ("single", "single_blocks")))
