"""Hashes, ed25519 signatures and sealed boxes: the only place that touches PyNaCl and hashlib."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from consortium.errors import CodecError, SignatureError

HASH_BYTES = 32
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An ed25519 signing key; the same seed also yields an X25519 key for sealed boxes."""

    seed: bytes

    @staticmethod
    def generate() -> KeyPair:
        return KeyPair(bytes(nacl.signing.SigningKey.generate()))

    @property
    def public_key(self) -> bytes:
        return _signing_key(self.seed).verify_key.encode()

    def sign(self, message: bytes) -> bytes:
        return _signing_key(self.seed).sign(message).signature

    def open_sealed(self, ciphertext: bytes) -> bytes:
        """Decrypt a sealed box addressed to this key; raises `SignatureError` if it was not."""
        private = _signing_key(self.seed).to_curve25519_private_key()
        try:
            return nacl.public.SealedBox(private).decrypt(ciphertext)
        except (nacl.exceptions.CryptoError, ValueError, TypeError):
            raise SignatureError("sealed box cannot be opened with this key") from None


@lru_cache(maxsize=4096)
def _signing_key(seed: bytes) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(seed)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if `signature` is `public_key`'s ed25519 signature over `message`."""
    if len(signature) != SIGNATURE_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def require_signature(public_key: bytes, message: bytes, signature: bytes, who: str) -> None:
    if not verify(public_key, message, signature):
        raise SignatureError(f"bad signature by {who}")


def seal(public_key: bytes, plaintext: bytes) -> bytes:
    """Encrypt to the holder of the ed25519 `public_key` (converted to X25519): a sealed box."""
    try:
        curve = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(public_key)
    except (nacl.exceptions.RuntimeError, ValueError, TypeError):
        raise CodecError("not an ed25519 public key") from None
    return nacl.public.SealedBox(nacl.public.PublicKey(curve)).encrypt(plaintext)
