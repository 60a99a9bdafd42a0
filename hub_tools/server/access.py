"""Who may do what: bearer tokens for writes and private repos, and signed LFS upload URLs."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

LOCAL_USER = "user"


class Caller(Enum):
    """What the `Authorization` header of a request proves."""

    ANONYMOUS = "anonymous"  # no token
    INVALID = "invalid"  # a token that is not one of the server's
    USER = "user"  # a valid token, or any request when the server has no tokens (single-user local mode)


@dataclass(frozen=True)
class Access:
    """The server's tokens and the secret that signs upload URLs."""

    tokens: frozenset[str]
    secret: bytes

    @classmethod
    def load(cls, data_dir: Path, tokens: list[str] | None) -> Access:
        """Tokens as given; the signing secret is kept in `data_dir` so upload URLs survive a restart."""
        secret_file = data_dir / "upload-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_hex(32))
        return cls(frozenset(t for t in tokens or [] if t), bytes.fromhex(secret_file.read_text().strip()))

    def caller(self, authorization: str | None) -> Caller:
        """Classify a request by its `Authorization` header."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        if not self.tokens:
            return Caller.USER
        if not token:
            return Caller.ANONYMOUS
        if any(hmac.compare_digest(token, known) for known in self.tokens):
            return Caller.USER
        return Caller.INVALID

    def sign(self, *parts: str) -> str:
        """Signature that lets a later request without a token do exactly this (e.g. PUT one LFS object)."""
        return hmac.new(self.secret, "\0".join(parts).encode(), hashlib.sha256).hexdigest()

    def check_signature(self, signature: str, *parts: str) -> bool:
        """Whether `signature` was made by `sign(*parts)`."""
        return hmac.compare_digest(signature, self.sign(*parts))
