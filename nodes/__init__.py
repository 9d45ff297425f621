"""V3 node classes, one module per family. Thin: parse inputs, call the library, build outputs."""
from comfy_api.latest import ComfyExtension, io


class AttentionEditExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        # ComfyUI 0.8's loader never awaits on_load(), so folder registration happens here.
        from .model_folders import register_model_folders
        from . import attention_maps, demo_model, direct_inversion, flow, inversion, p2p, pix2pix_zero

        register_model_folders()
        return [*p2p.NODES, *attention_maps.NODES, *inversion.NODES, *direct_inversion.NODES, *pix2pix_zero.NODES,
                *flow.NODES, *demo_model.NODES]
