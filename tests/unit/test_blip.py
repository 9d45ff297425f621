"""BLIP captioning on a tiny random-weight model written by tests/tiny_blip.py (no network)."""
import os

import pytest
import torch

pytest.importorskip("transformers")

from captioning.blip import BlipModelMissing, caption_images, check_model_dir  # noqa: E402
from tests.tiny_blip import make_tiny_blip  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny matmuls on a busy machine are dominated by thread hand-offs.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    return str(make_tiny_blip(tmp_path_factory.mktemp("blip") / "tiny"))


def images(b=3, h=40, w=56, seed=0):
    return torch.rand(b, h, w, 3, generator=torch.Generator().manual_seed(seed))


def test_one_caption_per_image_deterministic_and_ordered(tiny_blip):
    imgs = images()
    first = caption_images(tiny_blip, imgs, max_new_tokens=8)
    again = caption_images(tiny_blip, imgs, max_new_tokens=8)
    assert len(first) == 3 and all(isinstance(c, str) and c for c in first)
    assert first == again
    # batching (chunks of 2) and reversing the batch give the same caption per image
    assert caption_images(tiny_blip, imgs.flip(0), max_new_tokens=8, batch_size=2) == first[::-1]


def test_prefix_starts_the_caption_as_typed(tiny_blip):
    captions = caption_images(tiny_blip, images(2), prefix="A photo of ", max_new_tokens=6)
    assert len(captions) == 2
    for c in captions:
        assert c.startswith("A photo of")
        assert len(c) > len("A photo of")
        assert not c.startswith("A photo of a photo of")


def test_hub_layout_folder_loads(tmp_path):
    path = make_tiny_blip(tmp_path / "hub", hub_layout=True)
    assert (path / "preprocessor_config.json").is_file()
    assert len(caption_images(str(path), images(1), max_new_tokens=4)) == 1


def test_missing_folder_names_folder_files_and_source(tmp_path):
    missing = tmp_path / "models" / "blip" / "nope"
    with pytest.raises(BlipModelMissing) as err:
        caption_images(str(missing), images(1))
    msg = str(err.value)
    assert str(missing) in msg
    for expected in ("config.json", "model.safetensors", "pytorch_model.bin", "preprocessor_config.json",
                     "tokenizer", "Salesforce/blip-image-captioning-base", "models/blip/"):
        assert expected in msg
    assert isinstance(err.value, FileNotFoundError)


def test_folder_without_weights(tiny_blip, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in os.listdir(tiny_blip):
        if name != "model.safetensors":
            (partial / name).write_bytes(open(os.path.join(tiny_blip, name), "rb").read())
    with pytest.raises(BlipModelMissing, match="missing a weights file") as err:
        check_model_dir(partial)
    assert str(partial) in str(err.value)
    check_model_dir(tiny_blip)  # the complete folder passes


def test_a_damaged_folder_names_the_folder_and_the_fix(tiny_blip, tmp_path):
    """Every file present, the weights truncated: not transformers' raw error, but the folder and what to do."""
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in os.listdir(tiny_blip):
        data = open(os.path.join(tiny_blip, name), "rb").read()
        (damaged / name).write_bytes(data[:100] if name == "model.safetensors" else data)
    with pytest.raises(BlipModelMissing) as err:
        caption_images(str(damaged), images(1))
    msg = str(err.value)
    assert str(damaged) in msg and "could not be loaded" in msg and "Salesforce/blip-image-captioning-base" in msg
