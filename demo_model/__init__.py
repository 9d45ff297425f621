"""The pack's own small text-to-image model, trained on demo_world (see train.py and README)."""
