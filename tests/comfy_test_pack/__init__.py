"""Test-only ComfyUI node pack: tiny random-weight models, an identity attention patch and a capture node.

Loaded by the integration harness next to the real pack; never shipped to users.
"""
import importlib
import os

CAPTURED: dict = {}  # name -> last value a Capture node saw (read by the tests)
MASKS: dict = {}  # name -> MASK tensor a test or benchmark hands to AttnEditTest_Mask


def pack_module(name: str):
    """A module of the pack under test, as ComfyUI's loader imported it (module name = its path)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return importlib.import_module(root.replace(".", "_x_") + "." + name)


async def comfy_entrypoint():
    from .nodes import TestPackExtension

    return TestPackExtension()
