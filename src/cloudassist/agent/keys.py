"""The agent's RSA key: made at registration, kept in a PEM file, sent as a public key, used to sign requests.

The arithmetic of key generation and of the pure-Python signature is python-rsa's (`rsa`): prime testing and
the private-key operation (with blinding and the Chinese remainder theorem). Signatures are made by OpenSSL
when it can be used (agent/openssl.py: the libcrypto the `ssl` module has loaded, through ctypes), about 0.25
ms rather than 6 ms each. What is written here by hand is what python-rsa lacks or would make costly for an
agent that stays resident:

* the few fixed DER structures around the numbers: a PKCS#8 `PRIVATE KEY` (what the agent writes, and
  what cryptography wrote before), a PKCS#1 `RSA PRIVATE KEY` (read too; also what OpenSSL is given) and
  the SubjectPublicKeyInfo `PUBLIC KEY` registration sends. python-rsa reads and writes PKCS#1 only,
  through pyasn1, whose import alone would add about 2.5 MB to the agent's resident memory at every start;
* EMSA-PKCS1-v1_5 over MD5 (RFC 8017 §9.2). OpenSSL signs it; its first signature with a key is checked
  with the public key (s^e mod n must give the encoded message back, which proves it is the one signature
  of the message) before it is used. Without OpenSSL, if it refuses the key or its check fails, or if it
  ever fails to sign, the signature is made in Python: RSASP1 through `PrivateKey.blinded_decrypt`, which
  uses the CRT, about 3 times faster than `rsa.sign` (its `blinded_encrypt` does the full-size
  exponentiation). PKCS#1 v1.5 is deterministic: the signature is the same whichever makes it;
* key generation as FIPS 186-4 and OpenSSL make keys: two primes of exactly half the modulus' bits each
  (the two top bits set, so n has exactly `bits` bits), at least 2^(bits/2 - 100) apart, each p - 1
  coprime with e. python-rsa's own makes one prime 1/16 longer than the other, which OpenSSL signs with
  4 times slower (1 ms rather than 0.25 ms: its fast paths need primes of equal size). A sieve by small
  primes before python-rsa's Miller-Rabin test makes the search about 5 times faster without changing
  which primes can be found.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading

import rsa
import rsa.key
import rsa.pem
import rsa.prime
import rsa.randnum

from cloudassist.agent import openssl

__all__ = ["PrivateKey", "backend", "generate", "load_private_pem", "private_pem", "public_pem", "sign_md5"]

log = logging.getLogger("cloudassist.agent")

PrivateKey = rsa.PrivateKey
EXPONENT = 65537
_SEQUENCE, _INTEGER, _OCTET_STRING, _BIT_STRING, _NULL, _OID = 0x30, 0x02, 0x04, 0x03, 0x05, 0x06
#: The OID rsaEncryption (1.2.840.113549.1.1.1), DER content octets.
_RSA_OID = bytes.fromhex("2a864886f70d010101")
#: The AlgorithmIdentifier of an RSA key (rsaEncryption, NULL parameters), as DER.
_RSA_ALGORITHM = bytes.fromhex("300d06092a864886f70d0101010500")
#: DigestInfo of MD5 (RFC 8017 §9.2, note 1) up to the 16 digest bytes.
_MD5_DIGEST_INFO = bytes.fromhex("3020300c06082a864886f70d020505000410")
#: The product of the odd primes below 2000: a candidate sharing a factor with it is no prime.
_SMALL_PRIMES = math.prod(n for n in range(3, 2000, 2) if all(n % d for d in range(3, math.isqrt(n) + 1, 2)))


class NotRSAKey(ValueError):
    """A well-formed private key of another algorithm."""


def _getprime(bits: int) -> int:
    """A random prime of exactly `bits` bits whose two top bits are set, with p - 1 coprime with the exponent:
    python-rsa's `getprime` (same candidates, same Miller-Rabin test), with a cheap sieve first."""
    while True:
        candidate = rsa.randnum.read_random_odd_int(bits) | 1 << (bits - 2)
        if (
            math.gcd(candidate, _SMALL_PRIMES) == 1
            and math.gcd(candidate - 1, EXPONENT) == 1
            and rsa.prime.is_prime(candidate)
        ):
            return candidate


def generate(bits: int = 2048) -> rsa.PrivateKey:
    """A new RSA key pair of `bits` bits (n has exactly that many; p and q half as many each, p > q) with
    public exponent 65537."""
    half = bits // 2
    p = _getprime(half)
    while True:
        q = _getprime(bits - half)
        if abs(p - q) >> (half - 100):  # far enough apart that n cannot be factored from its square root
            break
    p, q = max(p, q), min(p, q)
    e, d = rsa.key.calculate_keys_custom_exponent(p, q, EXPONENT)
    return rsa.PrivateKey(p * q, e, d, p, q)


# DER: definite lengths, one-byte tags; all that these structures use.


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes((tag, size)) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


def _integer(value: int) -> bytes:
    return _tlv(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _read(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, content) items of a concatenation of DER items; ValueError if it is not one."""
    items, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("truncated DER")
        tag, size = data[pos], data[pos + 1]
        pos += 2
        if size & 0x80:
            count = size & 0x7F
            if not 0 < count <= 4 or pos + count > len(data):
                raise ValueError("bad DER length")
            size = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        if pos + size > len(data):
            raise ValueError("truncated DER")
        items.append((tag, data[pos : pos + size]))
        pos += size
    return items


def _sequence(data: bytes) -> list[tuple[int, bytes]]:
    """The items inside the one DER SEQUENCE that `data` must be."""
    items = _read(data)
    if len(items) != 1 or items[0][0] != _SEQUENCE:
        raise ValueError("not one DER SEQUENCE")
    return _read(items[0][1])


def _integers(items: list[tuple[int, bytes]]) -> list[int]:
    if any(tag != _INTEGER or not content for tag, content in items):
        raise ValueError("expected DER INTEGERs")
    return [int.from_bytes(content, "big", signed=True) for _, content in items]


def _from_pkcs1(der: bytes) -> rsa.PrivateKey:
    """An RSAPrivateKey (RFC 8017 A.1.2, two primes); ValueError if it is not one, or not consistent."""
    items = _sequence(der)
    if len(items) != 9:
        raise ValueError("not a two-prime PKCS#1 RSAPrivateKey")
    version, n, e, d, p, q, exp1, exp2, coef = _integers(items)
    if version != 0 or min(e, d, p, q) < 2 or p * q != n:
        raise ValueError("inconsistent RSA private key")
    key = rsa.PrivateKey(n, e, d, p, q)
    if (key.exp1, key.exp2, key.coef) != (exp1, exp2, coef) or key.blinded_decrypt(pow(2, e, n)) != 2:
        raise ValueError("inconsistent RSA private key")
    return key


def _from_pkcs8(der: bytes) -> rsa.PrivateKey:
    """A PrivateKeyInfo / OneAsymmetricKey (RFC 5208, 5958) holding an RSA key."""
    items = _sequence(der)
    if len(items) < 3 or _integers(items[:1])[0] not in (0, 1) or items[2][0] != _OCTET_STRING:
        raise ValueError("not a PKCS#8 PrivateKeyInfo")
    tag, algorithm = items[1]
    if tag != _SEQUENCE:
        raise ValueError("not a PKCS#8 PrivateKeyInfo")
    oid, *parameters = _read(algorithm) or [(0, b"")]
    if oid != (_OID, _RSA_OID) or parameters not in ([], [(_NULL, b"")]):
        raise NotRSAKey("not an RSA key")
    return _from_pkcs1(items[2][1])


def load_private_pem(data: bytes) -> rsa.PrivateKey:
    """The key of an unencrypted PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1); ValueError if the
    data is neither (NotRSAKey if it is a PKCS#8 key of another algorithm)."""
    if b"-----BEGIN PRIVATE KEY-----" in data:
        return _from_pkcs8(rsa.pem.load_pem(data, "PRIVATE KEY"))
    if b"-----BEGIN RSA PRIVATE KEY-----" in data:
        if b"Proc-Type:" in data:
            raise ValueError("the key is encrypted")
        return _from_pkcs1(rsa.pem.load_pem(data, "RSA PRIVATE KEY"))
    raise ValueError("no unencrypted PEM private key (PRIVATE KEY or RSA PRIVATE KEY) found")


def _pkcs1(key: rsa.PrivateKey) -> bytes:
    """`key` as a DER RSAPrivateKey (PKCS#1)."""
    numbers = (0, key.n, key.e, key.d, key.p, key.q, key.exp1, key.exp2, key.coef)
    return _tlv(_SEQUENCE, b"".join(_integer(v) for v in numbers))


def private_pem(key: rsa.PrivateKey) -> bytes:
    """`key` as a PEM `PRIVATE KEY` (PKCS#8 holding the PKCS#1 RSAPrivateKey)."""
    return rsa.pem.save_pem(_tlv(_SEQUENCE, _integer(0) + _RSA_ALGORITHM + _tlv(_OCTET_STRING, _pkcs1(key))),
                            "PRIVATE KEY")


def public_pem(key: rsa.PrivateKey) -> bytes:
    """The public half of `key` as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo, PKIX)."""
    pkcs1 = _tlv(_SEQUENCE, _integer(key.n) + _integer(key.e))
    return rsa.pem.save_pem(_tlv(_SEQUENCE, _RSA_ALGORITHM + _tlv(_BIT_STRING, b"\x00" + pkcs1)), "PUBLIC KEY")


class _Native:
    """The keys OpenSSL holds for us (a few: an agent has one), and whether OpenSSL may still be used."""

    LIMIT = 4

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[tuple[int, int], openssl.PrivateKey | None] = {}  #: None: OpenSSL refused this key
        self.broken = ""  #: why OpenSSL is not used any more in this process ("" while it is)

    def key(self, key: rsa.PrivateKey) -> openssl.PrivateKey | None:
        """OpenSSL's copy of `key`, made on first use; None if OpenSSL is not to be used for it."""
        library = openssl.library()
        if library is None or self.broken:
            return None
        numbers = (key.n, key.d)
        with self.lock:
            if numbers in self.keys:
                return self.keys[numbers]
            found: openssl.PrivateKey | None = None
            try:
                found = library.private_key(_pkcs1(key))
            except openssl.Unavailable as exc:
                log.warning("OpenSSL cannot use the agent's key (%s); signing in Python", exc)
            if found is not None and not _verifies(key, _PROBE, found.sign_md5(_PROBE, _size(key))):
                log.warning("OpenSSL's signature with the agent's key does not verify; signing in Python")
                found = None
            while len(self.keys) >= self.LIMIT:
                del self.keys[next(iter(self.keys))]  # the oldest (freed once no signature uses it)
            self.keys[numbers] = found
            return found

    def give_up(self, reason: str) -> None:
        with self.lock:
            if not self.broken:
                log.warning("OpenSSL %s; signing in Python from now on", reason)
            self.broken = reason
            self.keys.clear()


_native = _Native()
#: What OpenSSL signs once with a key it is given, to check that its signatures are ours.
_PROBE = b"cloudassist: the agent's signature, checked"


def backend(key: rsa.PrivateKey) -> str:
    """What signs with `key` in this process: OpenSSL (and which), or Python, and why. Loads the key into
    OpenSSL if it is not yet, so that the first request does not pay for it."""
    if _native.key(key) is not None:
        library = openssl.library()
        return f"{library.version if library else 'OpenSSL'} (the ssl module's libcrypto, through ctypes)"
    why = _native.broken or openssl.unavailable or "OpenSSL refused the key"
    return f"Python (python-rsa): {why}"


def _size(key: rsa.PrivateKey) -> int:
    return (key.n.bit_length() + 7) // 8


def _encoded(key: rsa.PrivateKey, message: bytes) -> int:
    """EMSA-PKCS1-v1_5 of `message` with MD5, as an integer."""
    encoded = _MD5_DIGEST_INFO + hashlib.md5(message, usedforsecurity=False).digest()
    return int.from_bytes(b"\x00\x01" + b"\xff" * (_size(key) - len(encoded) - 3) + b"\x00" + encoded, "big")


def _verifies(key: rsa.PrivateKey, message: bytes, signature: bytes | None) -> bool:
    """Whether `signature` is the signature of `message` with `key` (RSASSA-PKCS1-v1_5 over MD5)."""
    return (
        signature is not None
        and len(signature) == _size(key)
        and pow(int.from_bytes(signature, "big"), key.e, key.n) == _encoded(key, message)
    )


def sign_md5(key: rsa.PrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 over MD5 of `message` (RFC 8017 §8.2.1): the signature, as long as the modulus.

    OpenSSL's signature is not checked again here (that costs 0.15 ms, more than half of making it): its
    first with this key was (`_Native.key`), the scheme is deterministic, and OpenSSL checks each result
    of its CRT with the public key itself before returning it."""
    size = _size(key)
    native = _native.key(key)
    if native is not None:
        signature = native.sign_md5(message, size)
        if signature is not None and len(signature) == size:
            return signature
        _native.give_up("failed to sign")
    return key.blinded_decrypt(_encoded(key, message)).to_bytes(size, "big")
