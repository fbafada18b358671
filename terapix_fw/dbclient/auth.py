"""Shared-secret authentication of dbClient requests: an HMAC-SHA256 of the request body.

The secret comes from ``$TERAPIX_DBCLIENT_SECRET`` or a file (``--secret-file``; keep it mode 0600).
A signature covers the exact bytes sent, so a document cannot be altered in transit; replaying a signed
request is harmless because documents are idempotent by id.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from .xmldoc import DocumentError

__all__ = ["HEADER", "load_secret", "sign", "verify"]

HEADER = "X-Terapix-Signature"
ENV = "TERAPIX_DBCLIENT_SECRET"


def load_secret(secret: str | bytes | None = None, secret_file: str | os.PathLike | None = None) -> bytes:
    """The shared secret: ``secret``, else the file's content (stripped), else ``$TERAPIX_DBCLIENT_SECRET``.

    Parameters
    ----------
    secret : str or bytes, optional
    secret_file : str or path-like, optional

    Returns
    -------
    bytes

    Raises
    ------
    DocumentError
        If the file cannot be read or is empty, or no secret is configured.
    """
    if secret:
        return secret.encode() if isinstance(secret, str) else secret
    if secret_file:
        try:
            value = Path(secret_file).read_bytes().strip()
        except OSError as exc:
            raise DocumentError(f"cannot read the dbClient secret: {exc.strerror}", str(secret_file)) from None
        if not value:
            raise DocumentError("the dbClient secret file is empty", str(secret_file))
        return value
    value = os.environ.get(ENV, "")
    if not value:
        raise DocumentError(f"no dbClient shared secret: set ${ENV} or give --secret-file")
    return value.encode()


def sign(body: bytes, secret: bytes) -> str:
    """The signature header value of ``body``: ``sha256=<hex HMAC>`` with the shared secret.

    Parameters
    ----------
    body : bytes
        The request body.
    secret : bytes
        The shared secret.

    Returns
    -------
    str
    """
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: bytes) -> str | None:
    """None if ``header`` is a valid signature of ``body``, else the reason it is not.

    Parameters
    ----------
    body : bytes
        The request body.
    header : str or None
        The signature header received.
    secret : bytes

    Returns
    -------
    str or None
    """
    if not header:
        return f"missing {HEADER} header (requests must be signed with the shared secret)"
    if not header.startswith("sha256="):
        return f"{HEADER} must be 'sha256=<hex HMAC>'"
    if not hmac.compare_digest(header, sign(body, secret)):
        return "bad signature: wrong shared secret or altered body"
    return None
