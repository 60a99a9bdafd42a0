"""Gradio components tuned for FaceReg (same front end as Gradio's own)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from space.state import fail

WEBCAM = gr.WebcamOptions(mirror=False)  # the server must get the picture as the camera took it, not mirrored


class FaceImage(gr.Image):
    """`gr.Image` whose unreadable uploads raise a readable gr.Error instead of Gradio's generic failure."""

    is_template = True  # rendered by the front end's own Image component

    def preprocess(self, payload: Any) -> Any:
        """Decode as gr.Image does; a file PIL cannot read becomes a message naming it."""
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception:  # noqa: BLE001 - PIL raises several kinds for files that are not images
            name = getattr(payload, "orig_name", None) or "the uploaded file"
            raise fail(f"{name} is not an image that can be read: upload a JPEG, PNG or WebP photo.",
                       title="Unreadable image") from None


def face_image(label: str, *, webcam: bool = True, **kwargs: Any) -> FaceImage:
    """An image input taking uploads and (unmirrored) webcam pictures, passed on as a file path."""
    sources = ["upload", "webcam"] if webcam else ["upload"]
    return FaceImage(label=label, sources=sources, type="filepath", webcam_options=WEBCAM, **kwargs)


class ChipImage(gr.Image):
    """An output `gr.Image` for aligned face chips: small JPEGs, written to Gradio's cache atomically.

    Gradio names a cached image by a hash of its bytes and rewrites the file in place each time (truncate, then
    write), so two visitors shown the same chip at once (the same photo, an example) could download a half-written
    file. Here the bytes go to a unique temporary name in the same folder and are renamed into place: a reader sees
    the whole file or none.
    """

    is_template = True  # rendered by the front end's own Image component

    def __init__(self, label: str, **kwargs: Any) -> None:
        super().__init__(label=label, interactive=False, format="jpeg", **kwargs)

    def postprocess(self, value: Any) -> Any:
        """Save an array as a JPEG in the cache (atomically), then let gr.Image describe the file."""
        if value is not None and not isinstance(value, (str, Path)):
            from gradio.processing_utils import encode_pil_to_bytes, hash_bytes
            from PIL import Image

            data = encode_pil_to_bytes(Image.fromarray(value), "jpeg")
            folder = Path(self.GRADIO_CACHE) / hash_bytes(data)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "chip.jpeg"
            partial = folder / f".chip-{uuid.uuid4().hex}.part"
            partial.write_bytes(data)
            os.replace(partial, path)
            value = str(path.resolve())
        return super().postprocess(value)
