"""What the tests of the running app share: LFW faces as gradio_client files, errors' messages, a visitor's workspace."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.conftest import lfw_image


def lfw(name: str, n: int):
    """An LFW image as a gradio_client file."""
    return handle_file(str(lfw_image(name, n)))


def app_error(call) -> str:
    """The message of the AppError a call raises."""
    with pytest.raises(AppError) as raised:
        call()
    return str(raised.value)


def workspace_of(app, client: Client):
    """The app's workspace for a gradio_client session (None when it has none)."""
    return app.workspaces.find(SimpleNamespace(session_hash=client.session_hash))
