"""A tiny random-weight BLIP captioner in Hugging Face format, written without network access.

The layout mirrors Salesforce/blip-image-captioning-base (BertTokenizer + BlipImageProcessor in a
BlipProcessor, BlipForConditionalGeneration weights), scaled down so loading and generating take
a fraction of a second. Token roles follow the real model: `BlipForConditionalGeneration.generate`
overwrites the first prompt token ([CLS]) with text_config.bos_token_id (30522 = "[DEC]" in the
real vocabulary), drops the trailing [SEP], and stops at text_config.sep_token_id. Here "[DEC]" is
a vocabulary entry and the tokenizer's bos token, so decoding with skip_special_tokens removes it.
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = ("a an the photo of cat dog bird on in with and is are sitting standing lying table red blue "
         "green small large man woman child picture painting white black two three room grass tree car "
         "street house window next to near bed couch field beach sky water snow").split()
IMAGE_SIZE = 32


def make_tiny_blip(path: str | Path, seed: int = 0, hub_layout: bool = False) -> Path:
    """Write the model to `path`. `hub_layout` writes the file set a hub download has
    (preprocessor_config.json + vocab.txt) instead of transformers 5's processor_config.json."""
    from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration,
                              BlipImageProcessor, BlipProcessor)

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(SPECIAL + WORDS) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab_file), bos_token="[DEC]", model_max_length=64)

    text_config = dict(
        vocab_size=len(SPECIAL) + len(WORDS), hidden_size=32, encoder_hidden_size=32,
        intermediate_size=64, projection_dim=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=64,
        bos_token_id=tokenizer.convert_tokens_to_ids("[DEC]"),
        pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    vision_config = dict(hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=1,
                         num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=16)
    config = BlipConfig(text_config=text_config, vision_config=vision_config, projection_dim=32,
                        image_text_hidden_size=32)

    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    # BlipVisionConfig initialises with std 1e-10, so a fresh model ignores its image. Larger
    # vision and cross-attention weights make captions differ per image (batch order is testable).
    with torch.no_grad():
        cross = [p for n, p in model.text_decoder.named_parameters() if "crossattention" in n]
        for p in list(model.vision_model.parameters()) + cross:
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    model.save_pretrained(path)

    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    if hub_layout:
        image_processor.save_pretrained(path)
        tokenizer.save_pretrained(path)
    else:
        BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path
