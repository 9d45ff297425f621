"""Model folders this pack reads: models/blip/<name>/ and models/edit_directions/*.safetensors.

Users can map more locations for both names in extra_model_paths.yaml.
"""
import os

FOLDERS = ("blip", "edit_directions")


def register_model_folders() -> None:
    import folder_paths

    for name in FOLDERS:
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name), is_default=True)
