"""SD3 / SD3.5 (comfy/ldm/modules/diffusionmodules/mmdit.py `MMDiT`): context first in every joint block; no block
ids are set, so a block is its position among the joint calls of one model call."""
from .joint import JointFamily

FAMILY = JointFamily("SD3", ("comfy.ldm.modules.diffusionmodules.mmdit", "MMDiT"), (("joint", "joint_blocks"),),
                     block_ids=False, subclasses=True)
