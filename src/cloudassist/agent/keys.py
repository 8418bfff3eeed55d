"""The agent's RSA key: made at registration, kept in a PEM file, sent as a public key, used to sign requests.

The arithmetic is python-rsa's (`rsa`): prime testing, key generation and the private-key operation (with
blinding and the Chinese remainder theorem). What is written here by hand is what it lacks or would make
costly for an agent that stays resident:

* the few fixed DER structures around the numbers: a PKCS#8 `PRIVATE KEY` (what the agent writes, and
  what cryptography wrote before), a PKCS#1 `RSA PRIVATE KEY` (read too) and the SubjectPublicKeyInfo
  `PUBLIC KEY` registration sends. python-rsa reads and writes PKCS#1 only, through pyasn1, whose import
  alone would add about 2.5 MB to the agent's resident memory at every start;
* EMSA-PKCS1-v1_5 over MD5 (RFC 8017 §9.2), then the private-key operation RSASP1 through
  `PrivateKey.blinded_decrypt`, which uses the CRT: about 3 times faster than `rsa.sign` (its
  `blinded_encrypt` does the full-size exponentiation), and the agent signs every request. PKCS#1 v1.5 is
  deterministic, so the signature is the same as any other implementation's for the same key and message;
* a sieve by small primes before python-rsa's Miller-Rabin test during key generation, which makes
  key generation about 5 times faster (about 0.5 s rather than 3 s on average) without changing which
  primes can be found.
"""

from __future__ import annotations

import hashlib
import math

import rsa
import rsa.key
import rsa.pem
import rsa.prime
import rsa.randnum

__all__ = ["PrivateKey", "generate", "load_private_pem", "private_pem", "public_pem", "sign_md5"]

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
    """A random prime of exactly `bits` bits: python-rsa's `getprime`, with a cheap sieve first."""
    while True:
        candidate = rsa.randnum.read_random_odd_int(bits)
        if math.gcd(candidate, _SMALL_PRIMES) == 1 and rsa.prime.is_prime(candidate):
            return candidate


def generate(bits: int = 2048) -> rsa.PrivateKey:
    """A new RSA key pair of `bits` bits (n has exactly that many) with public exponent 65537."""
    p, q, e, d = rsa.key.gen_keys(bits, _getprime, accurate=True, exponent=EXPONENT)
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


def private_pem(key: rsa.PrivateKey) -> bytes:
    """`key` as a PEM `PRIVATE KEY` (PKCS#8 holding the PKCS#1 RSAPrivateKey)."""
    numbers = (0, key.n, key.e, key.d, key.p, key.q, key.exp1, key.exp2, key.coef)
    pkcs1 = _tlv(_SEQUENCE, b"".join(_integer(v) for v in numbers))
    return rsa.pem.save_pem(_tlv(_SEQUENCE, _integer(0) + _RSA_ALGORITHM + _tlv(_OCTET_STRING, pkcs1)), "PRIVATE KEY")


def public_pem(key: rsa.PrivateKey) -> bytes:
    """The public half of `key` as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo, PKIX)."""
    pkcs1 = _tlv(_SEQUENCE, _integer(key.n) + _integer(key.e))
    return rsa.pem.save_pem(_tlv(_SEQUENCE, _RSA_ALGORITHM + _tlv(_BIT_STRING, b"\x00" + pkcs1)), "PUBLIC KEY")


def sign_md5(key: rsa.PrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 over MD5 of `message` (RFC 8017 §8.2.1): the signature, as long as the modulus."""
    size = (key.n.bit_length() + 7) // 8
    encoded = _MD5_DIGEST_INFO + hashlib.md5(message, usedforsecurity=False).digest()
    padded = b"\x00\x01" + b"\xff" * (size - len(encoded) - 3) + b"\x00" + encoded
    return key.blinded_decrypt(int.from_bytes(padded, "big")).to_bytes(size, "big")
