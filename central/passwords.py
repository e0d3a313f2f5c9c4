"""Console passwords: salted scrypt (standard library), compared in constant time.

A stored hash reads `scrypt$N$r$p$SALT_HEX$HASH_HEX`, so the cost can rise later without
invalidating old hashes (each is checked with its own parameters). Limits: a password is
`PASSWORD_CHARS_MIN`..`PASSWORD_CHARS_MAX` characters; a stored hash's cost is bounded
(`N_MAX`) so a tampered row cannot make a login burn the server's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PASSWORD_CHARS_MIN = 10
PASSWORD_CHARS_MAX = 1024
SCRYPT_N = 2**14  # ≈ 16 MiB and ≈ 50 ms a check: slow for a guesser, fine for a login
SCRYPT_R = 8
SCRYPT_P = 1
N_MAX = 2**17
SALT_BYTES = 16
HASH_BYTES = 32
MAXMEM_BYTES = 256 * 1024 * 1024


class PasswordError(ValueError):
    """A password the console will not take; the message says what it needs."""


def check_new(password: str) -> str:
    if not PASSWORD_CHARS_MIN <= len(password) <= PASSWORD_CHARS_MAX:
        raise PasswordError(f"a password has {PASSWORD_CHARS_MIN}..{PASSWORD_CHARS_MAX} characters")
    if not password.isprintable():
        raise PasswordError("a password has printable characters only")
    return password


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=MAXMEM_BYTES)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(check_new(password), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


# Checked when the user is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'00' * SALT_BYTES}${'00' * HASH_BYTES}"


def verify(password: str, stored: str | None) -> bool:
    """True if `password` matches `stored` (None: an unknown user — always False, same cost)."""
    try:
        scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        n_i, r_i, p_i = int(n), int(r), int(p)
        if scheme != "scrypt" or not (2 <= n_i <= N_MAX and 1 <= r_i <= 32 and 1 <= p_i <= 16):
            return False
        want = bytes.fromhex(digest)
        got = _scrypt(password[:PASSWORD_CHARS_MAX], bytes.fromhex(salt), n_i, r_i, p_i)
    except ValueError:
        return False
    return hmac.compare_digest(got, want) and stored is not None
