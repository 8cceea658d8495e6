"""The vendors' callback crypto, implemented exactly with ``cryptography``.

* :class:`BizMsgCrypt`: the scheme WeCom (WXBizMsgCrypt) and DingTalk
  (DingCallbackCrypto) share. Key = base64(EncodingAESKey + "="), 32 bytes;
  AES-256-CBC with IV = key[:16] and PKCS#7 padding to 32-byte blocks; plaintext =
  16 random bytes + 4-byte big-endian length + message + receive id (corp id /
  app key / suite key); signature = SHA1 over the sorted, concatenated
  (token, timestamp, nonce, encrypt).
* :func:`feishu_decrypt` / :func:`feishu_encrypt`: Feishu/Lark event encryption:
  key = SHA256(encrypt_key), IV = the first 16 bytes of the base64 payload,
  AES-256-CBC, PKCS#7. :func:`feishu_signature`: SHA256 hex over
  timestamp + nonce + encrypt_key + body (the ``X-Lark-Signature`` header).

Test vectors from the vendors' documentation are in tests/connectors/test_crypto.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from binascii import Error as B64Error

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .base import SignatureError


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


class BizMsgCrypt:
    """WeCom's WXBizMsgCrypt / DingTalk's callback crypto (same construction)."""

    def __init__(self, connector: str, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        self.connector = connector
        self.token = token
        self.key = base64.b64decode(encoding_aes_key + "=")
        self.receive_id = receive_id

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return sha1_signature(self.token, timestamp, nonce, encrypt)

    def verify(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        if not hmac.compare_digest(self.signature(timestamp, nonce, encrypt), signature or ""):
            raise SignatureError("message signature does not match", connector=self.connector)

    def decrypt(self, encrypt: str) -> str:
        """The message inside ``encrypt``; refuses one addressed to another receive id."""
        try:
            data = base64.b64decode(encrypt)
            dec = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).decryptor()
            raw = dec.update(data) + dec.finalize()
            pad = raw[-1]
            if not 1 <= pad <= 32:
                raise ValueError("bad padding")
            raw = raw[:-pad]
            (length,) = struct.unpack(">I", raw[16:20])
            msg, receive_id = raw[20:20 + length], raw[20 + length:]
        except (ValueError, B64Error, struct.error, IndexError) as err:
            raise SignatureError(f"cannot decrypt: {err}", connector=self.connector) from None
        if self.receive_id and receive_id.decode(errors="replace") != self.receive_id:
            raise SignatureError("message is for another receive id", connector=self.connector)
        return msg.decode()

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        body = message.encode()
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body \
            + self.receive_id.encode()
        pad = 32 - len(plain) % 32  # the vendors pad to 32-byte blocks, not AES's 16
        plain += bytes([pad]) * pad
        enc = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def feishu_decrypt(encrypt_key: str, encrypt: str, connector: str = "feishu") -> str:
    try:
        data = base64.b64decode(encrypt)
        key = hashlib.sha256(encrypt_key.encode()).digest()
        dec = Cipher(algorithms.AES(key), modes.CBC(data[:16])).decryptor()
        raw = dec.update(data[16:]) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(raw) + unpadder.finalize()).decode()
    except (ValueError, B64Error) as err:
        raise SignatureError(f"cannot decrypt: {err}", connector=connector) from None


def feishu_encrypt(encrypt_key: str, plaintext: str, iv: bytes | None = None) -> str:
    iv = iv or os.urandom(16)
    key = hashlib.sha256(encrypt_key.encode()).digest()
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(data) + enc.finalize()).decode()


def feishu_signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
