"""FaceReg's Gradio app (`python -m space`): verification, webcam capture, dataset push, training and publishing.

Importing `space` applies `FACEREG_HUB_ENDPOINT` (through hub_tools.config) before Gradio imports huggingface_hub,
so the whole app can talk to a local Hub server.
"""
from hub_tools.config import apply_env

apply_env()
