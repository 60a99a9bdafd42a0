"""The token rules of a public Space: a visitor acts on the Hub only with their own sign-in, never the Space's token.

The app runs in this process as on a Space (SYSTEM=spaces, SPACE_ID, the OAuth settings Gradio reads), with the
Space owner's HF_TOKEN set, against the local Hub server. Signing in needs Hugging Face's OAuth provider, which
cannot be reached here: as a test double for it, the signed-in visitor's session cookie is made the way Gradio's own
OAuth callback stores it (Starlette's signed session, keyed by the OAuth client secret), holding a token of the local
Hub. Everything after the sign-in is the real app, Gradio and Hub.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid

import pytest
from gradio_client import Client
from huggingface_hub import HfApi

from tests.app_helpers import app_error, lfw
from tests.conftest import needs_lfw

# On a Space, Gradio starts a code reloader that needs Hugging Face's `spaces` package; without it that thread
# fails at start, which changes nothing for the app.
pytestmark = [needs_lfw, pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")]
OWNER_TOKEN_PLACEHOLDER = "hf_the_space_owners_token"




def session_cookie(secret: str, username: str, token: str) -> str:
    """A signed-in visitor's Gradio session cookie, as gradio.oauth's callback would store it."""
    from itsdangerous import TimestampSigner

    oauth_info = {
        "access_token": token, "token_type": "bearer", "scope": "openid profile write-repos manage-repos",
        "expires_at": int(time.time()) + 3600,
        "userinfo": {"sub": "1", "name": username.title(), "preferred_username": username,
                     "profile": f"https://huggingface.co/{username}", "picture": ""},
    }
    data = base64.b64encode(json.dumps({"oauth_info": oauth_info}).encode())
    signer = TimestampSigner(hashlib.sha256((secret + "-v4").encode()).hexdigest())
    return "session=" + signer.sign(data).decode()


@pytest.fixture
def space_app(tmp_path, monkeypatch, hub_server):
    """The app as on a public Space whose owner set HF_TOKEN (the local Hub's valid write token)."""
    import gradio.oauth

    secret = uuid.uuid4().hex
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "facereg/demo")
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    for name, value in (("OAUTH_CLIENT_ID", uuid.uuid4().hex), ("OAUTH_CLIENT_SECRET", secret),
                        ("OAUTH_SCOPES", "openid profile write-repos manage-repos"),
                        ("OPENID_PROVIDER_URL", hub_server.endpoint)):
        monkeypatch.setattr(gradio.oauth, name, value)  # read by Gradio when its module is imported
    from space.testing import running_app

    with running_app(tmp_path) as running:
        running.secret = secret
        yield running


def fill(client: Client) -> None:
    """Capture a small dataset of the visitor's own: 3 anchors, 3 positives, 3 negatives."""
    client.predict([lfw("Colin_Powell", n) for n in (1, 2, 3)], "anchor", api_name="/capture")
    client.predict([lfw("Colin_Powell", n) for n in (4, 5, 6)], "positive", api_name="/capture")
    client.predict([lfw(p, 1) for p in ("Tony_Blair", "Ariel_Sharon", "Hugo_Chavez")], "negative",
                   api_name="/capture")


def test_anonymous_visitors_never_use_the_spaces_token(space_app, hub_server, hub_repo_id, monkeypatch):
    api = HfApi(token=hub_server.token)
    anonymous = Client(space_app.url, verbose=False)
    assert anonymous.config["space_id"] == "facereg/demo"  # Gradio runs in Space mode
    fill(anonymous)

    refused = app_error(lambda: anonymous.predict(hub_repo_id, True, api_name="/push_dataset"))
    assert "Sign in with Hugging Face" in refused and hub_server.token not in refused
    assert not api.repo_exists(hub_repo_id, repo_type="dataset")

    _, _, _, run_id = anonymous.predict("local", "dlib_resnet", 1, api_name="/train")  # training needs no token
    assert "Sign in with Hugging Face" in app_error(lambda: anonymous.predict(run_id, hub_repo_id, False,
                                                                                  api_name="/publish"))
    assert not api.repo_exists(hub_repo_id)

    # A signed-in visitor publishes a private model with their own token; the Space's own token is now invalid,
    # so this can only succeed with the visitor's.
    monkeypatch.setenv("HF_TOKEN", OWNER_TOKEN_PLACEHOLDER)
    alice = Client(space_app.url, verbose=False,
                   headers={"Cookie": session_cookie(space_app.secret, "alice", hub_server.token)})
    fill(alice)
    assert hub_repo_id in alice.predict(hub_repo_id + "-faces", True, api_name="/push_dataset")
    assert api.repo_info(hub_repo_id + "-faces", repo_type="dataset").private
    _, _, _, alice_run = alice.predict("local", "dlib_resnet", 1, api_name="/train")
    message, info, _ = alice.predict(alice_run, hub_repo_id, True, api_name="/publish")
    assert info["repo"] == hub_repo_id and api.repo_info(hub_repo_id).private
    assert alice.predict(api_name="/model_info")["serves"] == "you alone"
    assert any(repo == hub_repo_id for repo, _ in space_app.models.cached_keys())  # in memory now

    # The private model is cached, but an anonymous visitor may not read the repo: refused, never served
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    missing = app_error(lambda: anonymous.predict(hub_repo_id, "", api_name="/load_model"))
    assert "not found" in missing and hub_server.token not in missing
    assert anonymous.predict(api_name="/model_info")["repo"] is None
    workspaces = {w.owner: w for w in space_app.workspaces.all()}
    assert workspaces["alice"].model.repo == hub_repo_id and workspaces[None].model is None
