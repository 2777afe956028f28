"""Password hashing, bearer tokens and keyed digests. Only digests are ever stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# scrypt cost: ~50 ms per sign-in on one core, far too slow for offline guessing at scale.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
TOKEN_BYTES = 32


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_digest(token: str) -> str:
    """Tokens are long and random, so a plain SHA-256 is enough to make a leaked table useless."""
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_digest(secret_key: str, value: str) -> str:
    """ID numbers and health codes have little entropy: key the digest so it cannot be brute-forced.

    The value is taken exactly as given: a code the authority would not recognise must not match one it does.
    """
    return hmac.new(secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def id_number_digest(secret_key: str, id_number: str) -> str:
    """ID-card numbers end in a check character that may be written x or X."""
    return keyed_digest(secret_key, id_number.strip().upper())
