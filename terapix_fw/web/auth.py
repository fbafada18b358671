"""Users and roles of the web console, read from a TOML configuration file.

::

    secret_key_file = "console.key"        # signs the session cookies (made, mode 0600, if missing)
    product_roots = ["/data/work"]         # files the console may serve (besides the runs' work dirs)
    runs_dir = "/data/console-runs"        # where submitted instruction files and their runs go

    [transfer]                             # DataTransfer keywords of the console's transfer action
    NODES_FILE = "/data/cluster.nodes"
    KEY_FILE = "/home/terapix/.ssh/id_ed25519"
    KNOWN_HOSTS = "/home/terapix/.ssh/known_hosts"

    [users.alice]
    role = "operator"                      # operator, control (the release control team) or pi
    password = "$argon2id$v=19$..."        # `terapix web passwd` prints one

    [users.bob]
    role = "pi"
    owner = "PI-Bob"                       # the exposures.owner value of the PI's proprietary data

Passwords are Argon2id hashes (argon2-cffi); a plain-text password in the file is refused.  Anyone not
logged in is the public.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

__all__ = ["ROLES", "User", "ConsoleConfig", "load_config", "hash_password", "verify_password"]

ROLES = ("operator", "control", "pi")


@dataclass(frozen=True)
class User:
    """A console user.

    Attributes
    ----------
    name : str
    role : str
        One of ``ROLES`` (``operator``, ``control``, ``pi``).
    password_hash : str
        Argon2id hash.
    owner : str
        The data owner the user stands for (their own name by default).
    """
    name: str
    role: str
    password_hash: str = field(repr=False)
    owner: str = ""

    @property
    def owner_name(self) -> str:
        """The exposures.owner value this user owns (a PI's ``owner``, else the user name)."""
        return self.owner or self.name


@dataclass
class ConsoleConfig:
    """The console's configuration file, read.

    Attributes
    ----------
    path : Path
    users : dict of str to User
    secret_key : bytes
        Signs session cookies.
    """
    path: Path
    users: dict[str, User]
    secret_key: bytes
    product_roots: list[Path]
    runs_dir: Path
    transfer: dict[str, str] = field(default_factory=dict)


def _hasher():
    from argon2 import PasswordHasher
    return PasswordHasher()


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` for the configuration file.

    Parameters
    ----------
    password : str

    Returns
    -------
    str
    """
    return _hasher().hash(password)


#: A hash of a random password, verified when the user name is unknown so that the answer takes as long
#: as for a known user (no user-name probing by timing).
_DUMMY: list[str] = []


def verify_password(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s (a missing user costs the same time as a wrong password).

    Parameters
    ----------
    user : User or None
    password : str

    Returns
    -------
    bool
    """
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    hasher = _hasher()
    if user is None:
        if not _DUMMY:
            _DUMMY.append(hasher.hash(secrets.token_hex(16)))
        try:
            hasher.verify(_DUMMY[0], password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            pass
        return False
    try:
        return hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _secret(path: Path) -> bytes:
    if path.is_file():
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise ConfigError(f"secret_key_file {path}: expected at least 32 bytes of secret, found {len(key)}")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def load_config(path: str | Path) -> ConsoleConfig:
    """Read the console's configuration; a bad entry is one clear error naming the file and the key.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ConsoleConfig

    Raises
    ------
    ConfigError
        Naming the file and the key.
    """
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"console configuration {path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"console configuration {path}: not TOML: {exc}") from None
    base = path.parent
    users: dict[str, User] = {}
    for name, entry in (data.get("users") or {}).items():
        where = f"console configuration {path}: [users.{name}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table with role and password")
        role = entry.get("role")
        if role not in ROLES:
            raise ConfigError(f"{where}: role {role!r}: expected one of {', '.join(ROLES)}")
        pw = entry.get("password", "")
        if not isinstance(pw, str) or not pw.startswith("$argon2"):
            raise ConfigError(f"{where}: password: expected an Argon2 hash ($argon2id$...; "
                              "`terapix web passwd` prints one), never the password itself")
        users[name] = User(name, role, pw, str(entry.get("owner") or ""))
    secret = data.get("secret_key")
    key = secret.encode() if isinstance(secret, str) and len(secret) >= 32 else \
        _secret(base / data.get("secret_key_file", "console.key"))
    roots = [(base / r).resolve() for r in data.get("product_roots", [])]
    runs_dir = (base / data.get("runs_dir", "console-runs")).resolve()
    transfer = data.get("transfer") or {}
    if not isinstance(transfer, dict) or not all(isinstance(v, (str, int, float)) for v in transfer.values()):
        raise ConfigError(f"console configuration {path}: [transfer]: expected DataTransfer keywords = values")
    return ConsoleConfig(path, users, key, roots, runs_dir, {str(k).upper(): str(v) for k, v in transfer.items()})
