"""The one switch that points `huggingface_hub` and `datasets` at a local Hub server.

`huggingface_hub` and `datasets` read `HF_ENDPOINT` (and `huggingface_hub` reads `HF_HUB_DISABLE_XET`) once,
when they are imported. Talking to the local server (`python -m hub_tools serve`) needs both: the endpoint, and
Xet disabled, because the server speaks the plain Git LFS protocol, not Xet. So:

* in code, call `use_local_hub("http://127.0.0.1:8090")` before anything imports `huggingface_hub`;
* from the shell, set `FACEREG_HUB_ENDPOINT=http://127.0.0.1:8090`: `import hub_tools` then applies it
  (through `apply_env()`), so every FaceReg entry point talks to that server.
"""
from __future__ import annotations

import os
import sys

ENDPOINT_ENV = "FACEREG_HUB_ENDPOINT"


class HubEndpointError(RuntimeError):
    """`huggingface_hub` was imported with another endpoint than the one asked for."""


def _imported_endpoints() -> dict[str, str]:
    """The endpoint each already imported Hub client library has frozen at import time."""
    frozen: dict[str, str] = {}
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        frozen["huggingface_hub"] = hub_constants.ENDPOINT
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        frozen["datasets"] = datasets_config.HF_ENDPOINT.rstrip("/")
    return frozen


def use_local_hub(endpoint: str) -> None:
    """Point `huggingface_hub` and `datasets` at `endpoint` and disable Xet; call before importing them."""
    endpoint = endpoint.rstrip("/")
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"Hub endpoint must be an http(s) URL, got {endpoint!r}")
    wrong = {lib: value for lib, value in _imported_endpoints().items() if value != endpoint}
    if wrong:
        details = ", ".join(f"{lib} uses {value}" for lib, value in wrong.items())
        raise HubEndpointError(
            f"Cannot switch to the Hub at {endpoint}: {details}, read when it was imported. Call "
            f"hub_tools.config.use_local_hub() (or set {ENDPOINT_ENV}) before anything imports huggingface_hub."
        )
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        # Same endpoint already frozen: Xet is checked at call time through this flag, so it can still be turned off.
        hub_constants.HF_HUB_DISABLE_XET = True


def apply_env() -> None:
    """Apply `FACEREG_HUB_ENDPOINT` through `use_local_hub` when it is set; do nothing otherwise."""
    endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
    if endpoint:
        use_local_hub(endpoint)
