"""Ed25519 signing keys for platform tokens, and the public key sets verifiers hold.

The platform signs with one current key and keeps the previous ones so tokens issued before a
rotation keep verifying until they expire. Verifiers (the gateway) only ever see public keys, as
JWKS. Key ids are RFC 7638 JWK thumbprints, so the same key always has the same id.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["KeyFileError", "KeyRing", "KeyRingError", "PublicKeySet", "jwk_thumbprint"]

_KEYRING_FORMAT = 1
# A JWKS document or key ring file bigger than this is not ours; refuse it rather than parse it.
_MAX_FILE_BYTES = 1 << 20


class KeyRingError(ValueError):
    """A key ring or JWKS document is malformed or cannot be used."""


class KeyFileError(KeyRingError):
    """A key file cannot be used as it is (e.g. its permissions let other users read it)."""


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url strictly: only the alphabet, and only the canonical encoding."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise KeyRingError("not valid base64url") from exc
    if _b64url_encode(raw) != text:
        raise KeyRingError("not canonical unpadded base64url")
    return raw


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key: a stable key id."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url_encode(_raw_public(public_key))}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("ascii")
    return _b64url_encode(hashlib.sha256(canonical).digest())


def _public_jwk(kid: str, public_key: Ed25519PublicKey) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url_encode(_raw_public(public_key)),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


def _read_bounded(path: Path, *, private: bool) -> str:
    """Read a small text file; for private key files refuse any group/other permission bits.

    The check is made on the opened file descriptor so the file checked is the file read.
    Symlinks are followed (Kubernetes Secret volumes are symlinks); the target's mode counts.
    """
    try:
        # O_NONBLOCK: opening a FIFO planted at the path must not hang; no effect on regular files.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path} is not a regular file")
        if private and os.name == "posix" and info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise KeyFileError(
                f"key file {path} has mode {mode:04o} and is accessible by group or others; "
                f"private keys must be readable by the owner only: run `chmod 600 {path}`"
            )
        data = handle.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise KeyFileError(f"{path} is larger than {_MAX_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"{path} is not UTF-8 text") from exc


def _write_private_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte on, replacing it atomically."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # mkstemp creates the file with O_EXCL and mode 0600, so it is never readable by others.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), 0o600)
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    if os.name == "posix":
        # Make the rename itself durable.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


class KeyRing:
    """Ed25519 signing keys: one current key signs, older ones are kept to verify old tokens."""

    def __init__(self, keys: list[_SigningKey]) -> None:
        if not keys:
            raise KeyRingError("a key ring needs at least one key")
        kids = [key.kid for key in keys]
        if len(set(kids)) != len(kids):
            raise KeyRingError("key ids in a key ring must be unique")
        self._keys = list(keys)  # oldest first; the last one is current

    @classmethod
    def generate(cls) -> KeyRing:
        """A new key ring with one fresh key."""
        return cls([cls._new_key()])

    @staticmethod
    def _new_key() -> _SigningKey:
        private_key = Ed25519PrivateKey.generate()
        return _SigningKey(kid=jwk_thumbprint(private_key.public_key()), private_key=private_key)

    def rotate(self) -> str:
        """Make a new key current, keep the old ones for verification; returns the new kid."""
        key = self._new_key()
        self._keys.append(key)
        return key.kid

    def remove(self, kid: str) -> None:
        """Drop a retired key: tokens it signed stop verifying. The current key cannot be removed."""
        if kid == self.current_kid:
            raise KeyRingError("the current signing key cannot be removed; rotate first")
        remaining = [key for key in self._keys if key.kid != kid]
        if len(remaining) == len(self._keys):
            raise KeyRingError(f"no key with kid {kid!r} in the key ring")
        self._keys = remaining

    @property
    def current_kid(self) -> str:
        return self._keys[-1].kid

    @property
    def kids(self) -> list[str]:
        """All key ids, oldest first (the last one is current)."""
        return [key.kid for key in self._keys]

    def signing_key(self) -> tuple[str, Ed25519PrivateKey]:
        """The kid and private key that new tokens are signed with."""
        key = self._keys[-1]
        return key.kid, key.private_key

    def jwks(self) -> dict[str, Any]:
        """The public half of every key, as a JWKS document (current key first)."""
        return {"keys": [_public_jwk(key.kid, key.public_key) for key in reversed(self._keys)]}

    def public_keys(self) -> PublicKeySet:
        return PublicKeySet({key.kid: key.public_key for key in self._keys})

    # Serialization. The JSON holds private keys: store it like a password, never log it.

    def to_json(self) -> str:
        """Private serialization (for the DB or a 0600 file); contains the private keys."""
        document = {
            "format": _KEYRING_FORMAT,
            "keys": [
                {"kid": key.kid, "alg": "EdDSA", "d": _b64url_encode(_raw_private(key.private_key))}
                for key in self._keys
            ],
        }
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        """Parse what `to_json` wrote; raises KeyRingError on anything else."""
        try:
            document = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise KeyRingError("key ring is not valid JSON") from exc
        if not isinstance(document, dict) or document.get("format") != _KEYRING_FORMAT:
            raise KeyRingError(f"key ring is not a format {_KEYRING_FORMAT} key ring document")
        entries = document.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeyRingError("key ring has no keys")
        keys: list[_SigningKey] = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("d"), str):
                raise KeyRingError("key ring entry must be an object with a private key 'd'")
            raw = _b64url_decode(entry["d"])
            if len(raw) != 32:
                raise KeyRingError("Ed25519 private key must be 32 bytes")
            private_key = Ed25519PrivateKey.from_private_bytes(raw)
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid:
                raise KeyRingError("key ring entry has no kid")
            keys.append(_SigningKey(kid=kid, private_key=private_key))
        return cls(keys)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key ring to `path` atomically with mode 0600 (never readable by others)."""
        _write_private_atomically(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> KeyRing:
        """Read a key ring file; refuses one that group or others can access."""
        return cls.from_json(_read_bounded(Path(path), private=True))

    def __repr__(self) -> str:  # never show private material
        return f"KeyRing(current_kid={self.current_kid!r}, keys={len(self._keys)})"


class PublicKeySet(Mapping[str, Ed25519PublicKey]):
    """Ed25519 public keys by kid: what a token verifier holds."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any]) -> PublicKeySet:
        """Build from a JWKS document. Keys that are not Ed25519 signing keys are ignored;
        malformed Ed25519 keys and a document with no usable key raise KeyRingError."""
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list):
            raise KeyRingError("JWKS document must be an object with a 'keys' list")
        keys: dict[str, Ed25519PublicKey] = {}
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise KeyRingError("JWKS entries must be objects")
            if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
                continue
            if entry.get("use", "sig") != "sig" or entry.get("alg", "EdDSA") != "EdDSA":
                continue
            kid, x = entry.get("kid"), entry.get("x")
            if not isinstance(kid, str) or not kid:
                raise KeyRingError("JWKS Ed25519 key has no kid")
            if not isinstance(x, str):
                raise KeyRingError(f"JWKS key {kid!r} has no 'x'")
            raw = _b64url_decode(x)
            if len(raw) != 32:
                raise KeyRingError(f"JWKS key {kid!r}: Ed25519 public key must be 32 bytes")
            if kid in keys:
                raise KeyRingError(f"JWKS has two keys with kid {kid!r}")
            keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
        if not keys:
            raise KeyRingError("JWKS document has no Ed25519 signing keys")
        return cls(keys)

    @classmethod
    def load_jwks_file(cls, path: str | os.PathLike[str]) -> PublicKeySet:
        """Read a JWKS JSON file (public keys only, so no permission check)."""
        text = _read_bounded(Path(path), private=False)
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise KeyRingError(f"{path} is not valid JSON") from exc
        if not isinstance(document, dict):
            raise KeyRingError(f"{path} is not a JWKS document")
        return cls.from_jwks(document)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [_public_jwk(kid, key) for kid, key in self._keys.items()]}

    def __getitem__(self, kid: str) -> Ed25519PublicKey:
        return self._keys[kid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"PublicKeySet(kids={list(self._keys)!r})"
