"""Gradio components tuned for FaceReg (same front end as Gradio's own)."""
from __future__ import annotations

from typing import Any

import gradio as gr

from space.state import fail

WEBCAM = gr.WebcamOptions(mirror=False)  # the server must get the picture as the camera took it, not mirrored

from gradio.events import Dependency

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
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


def face_image(label: str, *, webcam: bool = True, **kwargs: Any) -> FaceImage:
    """An image input taking uploads and (unmirrored) webcam pictures, passed on as a file path."""
    sources = ["upload", "webcam"] if webcam else ["upload"]
    return FaceImage(label=label, sources=sources, type="filepath", webcam_options=WEBCAM, **kwargs)