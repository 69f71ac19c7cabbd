"""The sealed session file: AES-256-GCM over a manifest and whatsmeow's database.

Layout (all integers big-endian); the whole header is authenticated as associated
data, so changing any byte of it (version, KDF parameters, salt, nonce) makes the
file fail to open exactly like a wrong key does:

    offset size  field
    0      8     magic  b"WASYNCSF"
    8      1     format version (1)
    9      1     key derivation: 1 = raw 32-byte key (HKDF-SHA256), 2 = passphrase (scrypt)
    10     1     scrypt log2(N)   (0 for a raw key)
    11     1     scrypt r         (0 for a raw key)
    12     1     scrypt p         (0 for a raw key)
    13     16    salt
    29     12    nonce
    41     ...   AES-GCM ciphertext of the plaintext, then the 16-byte tag

    plaintext = u32 length of manifest | manifest (UTF-8 JSON) | payload

The manifest names the session and carries the payload's SHA-256, so an import can
say what it is about to install before touching the disk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import struct
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from wasync.errors import WasyncError

MAGIC = b"WASYNCSF"
VERSION = 1
KDF_RAW = 1
KDF_SCRYPT = 2
_HEADER = struct.Struct(">8sBBBBB16s12s")
HEADER_SIZE = _HEADER.size
_SCRYPT_LOG2_N = 15  # 32 MiB and ~0.1 s per derivation
_SCRYPT_R = 8
_SCRYPT_P = 1
# Refuse parameters that would make opening a hostile file eat the machine.
_MAX_LOG2_N, _MAX_R, _MAX_P = 22, 16, 4
_INFO = b"wasync session file v1"
MIN_PASSPHRASE = 8
KEY_ENV = "WASYNC_SESSION_KEY"


class SessionFileError(WasyncError):
    pass


class WrongKey(SessionFileError):
    pass


@dataclass(frozen=True, slots=True)
class Secret:
    """What seals a file: a raw 32-byte key, or a passphrase."""

    key: bytes | None = None
    passphrase: str | None = None

    @classmethod
    def from_text(cls, value: str) -> Secret:
        """WASYNC_SESSION_KEY: 32 bytes as 64 hex digits or base64, else a passphrase."""
        text = value.strip()
        raw = _decode_key(text)
        if raw is not None:
            return cls(key=raw)
        return cls.from_passphrase(value)

    @classmethod
    def from_passphrase(cls, value: str) -> Secret:
        if len(value) < MIN_PASSPHRASE:
            raise SessionFileError(
                f"the passphrase is too short: use at least {MIN_PASSPHRASE} characters "
                f"(or a random key: {KEY_ENV}=$(openssl rand -base64 32))"
            )
        return cls(passphrase=value)

    @property
    def kind(self) -> str:
        return "key" if self.key is not None else "passphrase"


@dataclass(frozen=True, slots=True)
class Manifest:
    session: str
    jid: str | None
    exported_at: int
    sha256: str
    size: int
    store: str = "sqlite"
    format: str = "wasync-session"


def _decode_key(text: str) -> bytes | None:
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(text.encode("ascii") + b"=" * (-len(text) % 4))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            continue
        if len(raw) == 32:
            return raw
    return None


def _derive(secret: Secret, kdf: int, log2_n: int, r: int, p: int, salt: bytes) -> bytes:
    if kdf == KDF_RAW:
        if secret.key is None:
            raise WrongKey(
                "this session file was sealed with a random key, not a passphrase: set "
                f"{KEY_ENV} to that key"
            )
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(secret.key)
    if secret.passphrase is None:
        raise WrongKey(
            "this session file was sealed with a passphrase, not a random key: give the "
            f"passphrase ({KEY_ENV}=<passphrase> or at the prompt)"
        )
    if not (1 <= log2_n <= _MAX_LOG2_N and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise SessionFileError("this session file asks for unreasonable scrypt parameters")
    kdf_fn = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)
    return kdf_fn.derive(secret.passphrase.encode("utf-8"))


def seal(payload: bytes, manifest: Manifest, secret: Secret) -> bytes:
    salt, nonce = os.urandom(16), os.urandom(12)
    if secret.key is not None:
        kdf, params = KDF_RAW, (0, 0, 0)
    else:
        kdf, params = KDF_SCRYPT, (_SCRYPT_LOG2_N, _SCRYPT_R, _SCRYPT_P)
    header = _HEADER.pack(MAGIC, VERSION, kdf, *params, salt, nonce)
    key = _derive(secret, kdf, *params, salt)
    meta = json.dumps(asdict(manifest), sort_keys=True).encode()
    plaintext = struct.pack(">I", len(meta)) + meta + payload
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def open_sealed(blob: bytes, secret: Secret) -> tuple[Manifest, bytes]:
    """The manifest and payload of a sealed file; raises WrongKey or SessionFileError."""
    if len(blob) < HEADER_SIZE + 16 or not blob.startswith(MAGIC):
        raise SessionFileError("not a wasync session file (wrong magic header)")
    _magic, version, kdf, log2_n, r, p, salt, nonce = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise SessionFileError(
            f"this session file has format version {version}; this wasync reads version "
            f"{VERSION} (upgrade wasync to import it)"
        )
    if kdf not in (KDF_RAW, KDF_SCRYPT):
        raise SessionFileError(f"this session file uses an unknown key derivation ({kdf})")
    header = blob[:HEADER_SIZE]
    key = _derive(secret, kdf, log2_n, r, p, salt)
    try:
        plaintext = AESGCM(key).decrypt(nonce, blob[HEADER_SIZE:], header)
    except InvalidTag:
        raise WrongKey(
            f"the {secret.kind} does not open this session file (wrong {secret.kind}, or "
            "the file was altered): nothing was imported"
        ) from None
    (meta_len,) = struct.unpack_from(">I", plaintext)
    try:
        fields = json.loads(plaintext[4 : 4 + meta_len])
        manifest = Manifest(**fields)
    except (ValueError, TypeError) as exc:
        raise SessionFileError(f"the session file's manifest is unreadable: {exc}") from None
    payload = plaintext[4 + meta_len :]
    if hashlib.sha256(payload).hexdigest() != manifest.sha256 or len(payload) != manifest.size:
        raise SessionFileError("the session file's content does not match its manifest")
    return manifest, payload
