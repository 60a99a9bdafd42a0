"""Gradio components tuned for FaceReg (same front end as Gradio's own)."""
from __future__ import annotations

import base64
import html
from typing import Any, Sequence

import cv2
import gradio as gr
import numpy as np

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


def chips_html(chips: Sequence[np.ndarray], captions: Sequence[str], side: int = 150) -> str:
    """Aligned face chips side by side as one HTML block of inline JPEGs (data URLs).

    A verification's chips are shown once and never stored: nothing is written to Gradio's cache (so no copy of a
    visitor's face outlives the answer) and neither the browser nor an API client fetches them again.
    """
    figures = []
    for chip, caption in zip(chips, captions):
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(chip), cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise ValueError(f"could not encode {caption} as JPEG")
        data = base64.b64encode(jpeg.tobytes()).decode("ascii")
        label = html.escape(caption)
        # Each chip shrinks to fit, so that two stay side by side on a phone's narrow screen.
        figures.append(f'<figure class="facereg-chip" style="margin:0;text-align:center;flex:0 1 {side}px;min-width:0">'
                       f'<img src="data:image/jpeg;base64,{data}" alt="{label}" width="{side}" height="{side}" '
                       f'style="width:100%;height:auto">'
                       f"<figcaption>{label}</figcaption></figure>")
    return f'<div class="facereg-chips" style="display:flex;gap:12px">{"".join(figures)}</div>'
