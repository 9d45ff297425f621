"""BLIP image captioning with Hugging Face transformers, from a local folder only.

pix2pix-zero captions the input image with BLIP (LAVIS `blip_caption` / `base_coco`,
src/inversion.py:39, 54) and inverts with that caption. We use transformers'
`BlipForConditionalGeneration` instead of LAVIS (LAVIS pins old dependencies), loaded from
models/blip/<name>/ with `local_files_only=True`: nothing is downloaded at run time.

The model is loaded per call and released afterwards; BLIP base is ~1 GB in fp32 and captioning
happens once per image, so keeping it resident next to the diffusion model is not worth it.
"""

from __future__ import annotations

import gc
import os
import numpy as np
import torch

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# transformers 5 writes the image processor into processor_config.json, the hub folders and
# transformers 4 into preprocessor_config.json.
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
HUB_EXAMPLE = "Salesforce/blip-image-captioning-base"


class BlipModelMissing(FileNotFoundError):
    """The BLIP folder is missing, incomplete or unreadable."""


def _expected_files_text() -> str:
    return ("config.json, a weights file (model.safetensors or pytorch_model.bin), "
            "preprocessor_config.json, and the tokenizer files (tokenizer_config.json with "
            "vocab.txt or tokenizer.json)")


def check_model_dir(path: str | os.PathLike) -> None:
    """Raise BlipModelMissing naming the folder, what is missing and where models come from."""
    path = os.fspath(path)
    where = (f"Download a BLIP captioning model in Hugging Face format, e.g. '{HUB_EXAMPLE}' "
             f"(or Salesforce/blip-image-captioning-large) from the Hugging Face hub, into "
             f"ComfyUI/models/blip/<name>/ so the folder holds {_expected_files_text()}.")
    if not os.path.isdir(path):
        raise BlipModelMissing(f"BLIP model folder '{path}' does not exist. {where}")
    present = set(os.listdir(path))
    missing = []
    if "config.json" not in present:
        missing.append("config.json")
    if not present & set(WEIGHT_FILES):
        missing.append("a weights file (model.safetensors or pytorch_model.bin)")
    if not present & set(IMAGE_PROCESSOR_FILES):
        missing.append("preprocessor_config.json")
    if not present & set(TOKENIZER_FILES):
        missing.append("tokenizer files (vocab.txt or tokenizer.json, with tokenizer_config.json)")
    if missing:
        raise BlipModelMissing(f"BLIP model folder '{path}' is incomplete: missing {', '.join(missing)}. {where}")


def _first_line(error: Exception, limit: int = 200) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[:limit] + "..."


def _to_pil(images: torch.Tensor) -> list:
    from PIL import Image

    if images.dim() != 4 or images.shape[-1] < 3:
        raise ValueError(f"images must be [B, H, W, 3] floats in 0..1, got shape {tuple(images.shape)}")
    arr = (images[..., :3].detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in arr]


def caption_images(model_dir: str, images: torch.Tensor, prefix: str = "", max_new_tokens: int = 30,
                   device: str | torch.device = "cpu", batch_size: int = 8) -> list[str]:
    """One caption per image, greedy decoding (deterministic).

    With a prefix BLIP continues that text, and the returned caption is the prefix as typed
    followed by the continuation ("a photography of" -> "a photography of a woman and her dog").
    """
    from transformers import BlipForConditionalGeneration, BlipProcessor

    check_model_dir(model_dir)
    pil_images = _to_pil(images)
    prefix = prefix.strip()
    try:
        processor = BlipProcessor.from_pretrained(model_dir, local_files_only=True)
        model = BlipForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
    except Exception as e:  # corrupt or truncated files, a non-BLIP config, ...: transformers' own words follow
        raise BlipModelMissing(
            f"BLIP model folder '{model_dir}' could not be loaded ({type(e).__name__}: {_first_line(e)}). Its files "
            f"are damaged or not a BLIP captioning model: download '{HUB_EXAMPLE}' again into that folder "
            f"({_expected_files_text()}).") from e
    model.to(device).eval()
    try:
        captions: list[str] = []
        with torch.no_grad():
            for start in range(0, len(pil_images), batch_size):
                chunk = pil_images[start:start + batch_size]
                kwargs = {"text": [prefix] * len(chunk)} if prefix else {}
                inputs = processor(images=chunk, return_tensors="pt", **kwargs).to(device)
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
                captions += [_restore_prefix(processor, text, prefix)
                             for text in processor.batch_decode(out, skip_special_tokens=True)]
        return captions
    finally:
        del model
        gc.collect()
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()


def _restore_prefix(processor, caption: str, prefix: str) -> str:
    """generate() returns prompt + continuation, decoded (lower-cased, re-spaced by the
    tokenizer). Put the prefix back exactly as the user typed it."""
    caption = caption.strip()
    if not prefix:
        return caption
    decoded_prefix = processor.tokenizer.decode(
        processor.tokenizer(prefix, add_special_tokens=False)["input_ids"], skip_special_tokens=True).strip()
    if decoded_prefix and caption.startswith(decoded_prefix):
        return prefix + caption[len(decoded_prefix):]
    return caption

