"""The other side of the hash-interop tests (testkit/src/interop.rs runs it): Django's own
hashers, argon2-cffi and bcrypt, driven by one JSON request on stdin, answering one JSON
document on stdout.

  {"make": [password, ...], "check": [[password, encoded], ...], "email_keys": [address, ...]}
  -> {"made": [{"password", "django_pbkdf2_sha256", "django_argon2", "bcrypt_2b"}, ...],
      "checked": [{"django": bool, "argon2_cffi": bool | null}, ...],
      "email_keys": [key, ...]}

"django" is django.contrib.auth.hashers.check_password; "argon2_cffi" is
argon2.PasswordHasher().verify on a PHC string (null for other formats).
"""

import json
import sys
import unicodedata

import argon2
import bcrypt
import django
from django.conf import settings

settings.configure()
django.setup()

from django.contrib.auth import hashers  # noqa: E402
from django.contrib.auth.hashers import check_password, make_password  # noqa: E402


# Django's own hashers at lower work factors, so the test stays quick: same algorithms and
# encodings, and verification reads the costs from each hash as Django's always does (the
# default-cost hashes are fixed vectors in shared/src/hashing.rs).
class QuickPBKDF2(hashers.PBKDF2PasswordHasher):
    iterations = 20_000


class QuickArgon2(hashers.Argon2PasswordHasher):
    time_cost = 1
    memory_cost = 8192
    parallelism = 2


settings.PASSWORD_HASHERS = [
    "__main__.QuickPBKDF2",
    "__main__.QuickArgon2",
]
hashers.get_hashers.cache_clear()
hashers.get_hashers_by_algorithm.cache_clear()


def argon2_cffi(password, encoded):
    if not encoded.startswith("$argon2"):
        return None
    try:
        return argon2.PasswordHasher().verify(encoded, password)
    except argon2.exceptions.VerificationError:
        return False


def email_key(address):
    """pwreset's e-mail key, as the README's integration guide gives it for other languages
    (pwreset also refuses what is not an address; that check is not repeated here)."""
    key = address
    while True:
        nfkc = unicodedata.normalize("NFKC", key)
        folded = unicodedata.normalize("NFKC", nfkc.casefold()).strip()
        if folded == key:
            return folded
        key = folded


request = json.load(sys.stdin)
made = [
    {
        "password": password,
        "django_pbkdf2_sha256": make_password(password, None, "pbkdf2_sha256"),
        "django_argon2": make_password(password, None, "argon2"),
        "bcrypt_2b": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=6)).decode(),
    }
    for password in request.get("make", [])
]
checked = [
    {"django": check_password(password, encoded), "argon2_cffi": argon2_cffi(password, encoded)}
    for password, encoded in request.get("check", [])
]
email_keys = [email_key(address) for address in request.get("email_keys", [])]
json.dump({"made": made, "checked": checked, "email_keys": email_keys}, sys.stdout)
