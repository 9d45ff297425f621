"""comfyui-attention-edit: Prompt-to-Prompt and pix2pix-zero editing as ComfyUI nodes.

ComfyUI imports this package and awaits `comfy_entrypoint`. Nothing heavy happens at import time:
the node modules are imported when ComfyUI asks for the node list.
"""

WEB_DIRECTORY = None


async def comfy_entrypoint():
    from .nodes import AttentionEditExtension

    return AttentionEditExtension()
