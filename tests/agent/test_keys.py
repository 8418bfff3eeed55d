"""The agent's RSA key without cryptography (agent/keys.py): the same signatures, the same files, old files read.

cryptography made, wrote and used the agent's key before; it is the reference here: for one key and one
message both must give the same signature bytes, and each must read the other's PEM files. Signatures are made
by the ssl module's libcrypto through ctypes (agent/openssl.py) or, when that cannot be used, in Python: both
are held to the reference, and every way of not being usable falls back to Python.
"""

from __future__ import annotations

import _ssl
import base64
import ctypes
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rsa
import rsa.key
import rsa.pem
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from cloudassist.agent import identity as ident
from cloudassist.agent import keys, openssl

MESSAGES = [b"", b"mi-abc" + b"0" * 32 + b"1764000000000" + b"5f0c3c7e-1c2b-4c1e-9a43-6d0f1c9e2b7a",
            "ümlaut ✓".encode(), bytes(range(256)) * 4]


@pytest.fixture(scope="module")
def ours() -> keys.PrivateKey:
    return keys.generate()


@pytest.fixture(scope="module")
def theirs() -> crsa.RSAPrivateKey:
    return crsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def unbalanced() -> keys.PrivateKey:
    """A key as the agent made them with python-rsa's generator: primes of 1088 and 960 bits."""
    p, q, e, d = rsa.key.gen_keys(2048, keys._getprime, accurate=True, exponent=65537)
    assert (p.bit_length(), q.bit_length()) == (1088, 960)
    return rsa.PrivateKey(p * q, e, d, p, q)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenSSL not bound yet and no key handed to it: each test finds its own way."""
    monkeypatch.setattr(openssl, "_bound", [])
    monkeypatch.setattr(openssl, "unavailable", "")
    monkeypatch.setattr(keys, "_native", keys._Native())


@pytest.fixture(params=["openssl", "python"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fresh: None) -> Iterator[list[bytes]]:
    """Signing through OpenSSL (every signature it makes is recorded in the list) or in Python alone (OpenSSL
    unusable: the list stays empty)."""
    made: list[bytes] = []
    if request.param == "python":
        monkeypatch.setattr(openssl, "library", lambda: None)
    else:
        real = openssl.LibCrypto.sign_md5

        def recorded(self: openssl.LibCrypto, handle: int | None, message: bytes, size: int) -> bytes | None:
            signature = real(self, handle, message, size)
            made.append(signature or b"")
            return signature

        monkeypatch.setattr(openssl.LibCrypto, "sign_md5", recorded)
    yield made
    assert bool(made) == (request.param == "openssl")


def _pkcs8(key: crsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_a_new_key_is_rsa_2048_with_exponent_65537(ours: keys.PrivateKey) -> None:
    """generate() makes a key whose modulus has exactly 2048 bits, e = 65537, n = p·q with p ≠ q; python-rsa's
    own verification accepts its signatures."""
    assert ours.n.bit_length() == 2048
    assert ours.e == 65537
    assert ours.p * ours.q == ours.n
    assert ours.p != ours.q
    assert rsa.verify(b"hello", keys.sign_md5(ours, b"hello"), rsa.PublicKey(ours.n, ours.e)) == "MD5"


def test_new_keys_have_primes_of_equal_size_as_openssl_makes_them() -> None:
    """p and q have 1024 bits each (OpenSSL's fast signing needs that), p > q, at least 2^924 apart
    (FIPS 186-4), and p - 1, q - 1 are coprime with e, so d exists; n still has exactly the bits asked for."""
    for bits in (2048, 1024):
        key = keys.generate(bits)
        assert key.n.bit_length() == bits
        assert key.p.bit_length() == key.q.bit_length() == bits // 2
        assert key.p > key.q
        assert key.p - key.q >= 2 ** (bits // 2 - 100)
        assert key.e * key.d % ((key.p - 1) * (key.q - 1)) == 1
        assert rsa.verify(b"x", keys.sign_md5(key, b"x"), rsa.PublicKey(key.n, key.e)) == "MD5"


def test_signatures_are_those_cryptography_makes_with_the_same_key(ours: keys.PrivateKey, theirs: crsa.RSAPrivateKey,
                                                                   unbalanced: keys.PrivateKey,
                                                                   backend: list[bytes]) -> None:
    """PKCS#1 v1.5 over MD5 is deterministic: for our key (read by cryptography), for cryptography's key (read
    by us) and for a key with primes of unequal size (as older agents made), every message gets the same 256
    signature bytes from both, whether OpenSSL or Python signs."""
    for key_pem in (keys.private_pem(ours), _pkcs8(theirs), keys.private_pem(unbalanced)):
        reference = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(reference, crsa.RSAPrivateKey)
        mine = keys.load_private_pem(key_pem)
        for message in MESSAGES:
            expected = reference.sign(message, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - the protocol's
            assert keys.sign_md5(mine, message) == expected
            assert len(expected) == 256


def test_written_files_are_byte_for_byte_what_cryptography_writes(ours: keys.PrivateKey) -> None:
    """The private key file is the PKCS#8 PEM cryptography writes for the same key (so older agents read it),
    and the registered public key is its SubjectPublicKeyInfo PEM."""
    reference = serialization.load_pem_private_key(keys.private_pem(ours), password=None)
    assert isinstance(reference, crsa.RSAPrivateKey)
    numbers = reference.private_numbers()
    assert (numbers.p, numbers.q, numbers.d, numbers.public_numbers.n) == (ours.p, ours.q, ours.d, ours.n)
    assert _pkcs8(reference) == keys.private_pem(ours)
    assert reference.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) == keys.public_pem(ours)
    assert keys.private_pem(ours).startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_pkcs1_files_are_read_too(theirs: crsa.RSAPrivateKey) -> None:
    """A `RSA PRIVATE KEY` (PKCS#1, "traditional OpenSSL") file, as written by hand or by openssl, is read."""
    pem = theirs.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                               serialization.NoEncryption())
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    key = keys.load_private_pem(pem)
    assert (key.n, key.d) == (theirs.private_numbers().public_numbers.n, theirs.private_numbers().d)


def test_a_state_directory_of_the_cryptography_agent_still_loads(tmp_path: Path, theirs: crsa.RSAPrivateKey) -> None:
    """identity.json plus the PKCS#8 private-key.pem the agent wrote with cryptography: load() reads them and
    signs exactly as the old agent did; save() writes the same key file again."""
    state = tmp_path / "state"
    ident.ensure_state_dir(state)
    ident.write_atomic(state / ident.PRIVATE_KEY_FILE, _pkcs8(theirs), mode=0o600)
    ident.write_atomic(state / ident.IDENTITY_FILE, b'{"instance_id": "mi-old", "machine_id": "' + b"a" * 32 +
                       b'", "region_id": "cn-hangzhou", "server": "127.0.0.1:8443", "ca_file": "", "name": ""}')
    loaded = ident.load(state)
    message = (loaded.instance_id + loaded.machine_id + "1764000000000" + "req-1").encode()
    old = base64.b64encode(theirs.sign(message, padding.PKCS1v15(), hashes.MD5())).decode()  # noqa: S303
    assert ident.signature(loaded, "1764000000000", "req-1") == old
    ident.save(tmp_path / "again", loaded)
    assert (tmp_path / "again" / ident.PRIVATE_KEY_FILE).read_bytes() == _pkcs8(theirs)


def test_keys_that_are_not_usable_rsa_keys_are_refused(tmp_path: Path, theirs: crsa.RSAPrivateKey) -> None:
    """An EC key is "not an RSA key"; an encrypted key, a public key, garbage, a truncated file and a key whose
    numbers do not belong together are refused as "not an unencrypted PEM private key"."""
    state = tmp_path / "state"
    ident.ensure_state_dir(state)
    ident.write_atomic(state / ident.IDENTITY_FILE, b'{"instance_id": "mi-x", "machine_id": "' + b"a" * 32 +
                       b'", "region_id": "r", "server": "h:1"}')

    def refused(pem: bytes, match: str) -> None:
        ident.write_atomic(state / ident.PRIVATE_KEY_FILE, pem, mode=0o600)
        with pytest.raises(ident.IdentityError, match=match):
            ident.load(state)

    refused(_pkcs8(ec.generate_private_key(ec.SECP256R1())), "is not an RSA key")
    encrypted = theirs.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"secret"))
    refused(encrypted, "not an unencrypted PEM private key")
    legacy_encrypted = theirs.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.TraditionalOpenSSL,
                                            serialization.BestAvailableEncryption(b"secret"))
    refused(legacy_encrypted, "not an unencrypted PEM private key")
    refused(keys.public_pem(keys.load_private_pem(_pkcs8(theirs))), "not an unencrypted PEM private key")
    refused(b"hello", "not an unencrypted PEM private key")
    good = _pkcs8(theirs)
    refused(good[: len(good) // 2] + b"\n-----END PRIVATE KEY-----\n", "not an unencrypted PEM private key")
    d = theirs.private_numbers().d
    der = theirs.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    d_bytes = d.to_bytes((d.bit_length() + 8) // 8, "big")
    assert der.count(d_bytes) == 1
    tampered = der.replace(d_bytes, (d + 2).to_bytes(len(d_bytes), "big"))
    refused(rsa.pem.save_pem(tampered, "PRIVATE KEY"), "not an unencrypted PEM private key")


def _reference(key: keys.PrivateKey, message: bytes) -> bytes:
    loaded = serialization.load_pem_private_key(keys.private_pem(key), password=None)
    assert isinstance(loaded, crsa.RSAPrivateKey)
    return loaded.sign(message, padding.PKCS1v15(), hashes.MD5())  # noqa: S303 - the protocol's


def test_openssl_is_the_ssl_modules_libcrypto_and_maps_nothing_new(tmp_path: Path) -> None:
    """In a fresh interpreter that has imported ssl: OpenSSL is found, signs, and the files mapped into the
    process are the same before and after (no libcrypto of its own, no other library loaded)."""
    code = """
import json, ssl
from cloudassist.agent import keys, openssl
def mapped():
    return sorted({line.split()[-1] for line in open("/proc/self/maps") if line.split()[-1].startswith("/")})
key = keys.generate()
before = mapped()
print(json.dumps([keys.backend(key), openssl.unavailable, keys.sign_md5(key, b"m").hex(), before, mapped(),
                  keys.private_pem(key).decode()]))
"""
    found = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      timeout=60).stdout)
    name, unavailable, signature, before, after, pem = found
    assert name.startswith("OpenSSL ")
    assert name.endswith("(the ssl module's libcrypto, through ctypes)")
    assert unavailable == ""
    assert after == before
    assert any("libcrypto" in path for path in before)
    key = keys.load_private_pem(pem.encode())
    assert bytes.fromhex(signature) == _reference(key, b"m")


def test_without_the_ssl_modules_library_signatures_are_made_in_python(
        monkeypatch: pytest.MonkeyPatch, fresh: None, ours: keys.PrivateKey) -> None:
    """_ssl's file is not the one loaded (nothing is opened that is not loaded already): Python signs, and says
    why."""
    monkeypatch.setattr(_ssl, "__file__", "/nonexistent/_ssl.cpython-311-x86_64-linux-gnu.so", raising=False)
    assert keys.sign_md5(ours, b"m") == _reference(ours, b"m")
    assert openssl.library() is None
    assert openssl.unavailable.startswith("/nonexistent/_ssl.cpython-311-x86_64-linux-gnu.so is not loaded")
    assert keys.backend(ours).startswith("Python (python-rsa): /nonexistent/_ssl")


def test_a_libcrypto_missing_a_function_or_too_old_is_not_used() -> None:
    """A library without the functions (libc here) is refused naming the first one missing; so is a libcrypto
    that lacks one function, or whose version is before 1.1.1."""
    with pytest.raises(openssl.Unavailable, match=r"lacks a function.*OpenSSL_version_num"):
        openssl.bind("libc.so.6")
    real = _real()
    with pytest.raises(openssl.Unavailable, match=r"lacks a function.*EVP_DigestSign"):
        openssl.LibCrypto(_Doctored(real, EVP_DigestSign=None))
    with pytest.raises(openssl.Unavailable, match=r"older than 1\.1\.1"):
        openssl.LibCrypto(_Doctored(real, OpenSSL_version_num=lambda: 0x1000214F))
    with pytest.raises(openssl.Unavailable, match="no MD5"):
        openssl.LibCrypto(_Doctored(real, EVP_md5=lambda: None))
    assert openssl.LibCrypto(real).version.startswith("OpenSSL ")


def _real() -> ctypes.CDLL:
    """The ssl module's libcrypto, its functions given their prototypes (as LibCrypto gives them)."""
    real = ctypes.CDLL(_ssl.__file__, mode=os.RTLD_NOLOAD)
    openssl.LibCrypto(real)
    return real


class _Doctored:
    """The real libcrypto with some functions replaced (None: missing)."""

    def __init__(self, real: ctypes.CDLL, **replaced: Callable[..., Any] | None) -> None:
        self._real, self._replaced = real, replaced

    def __getattr__(self, name: str) -> Any:
        if name not in self._replaced:
            return getattr(self._real, name)
        function = self._replaced[name]
        if function is None:
            raise AttributeError(f"undefined symbol: {name}")
        return _Settable(function)


class _Settable:
    """A stand-in function that takes restype and argtypes as ctypes functions do."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)


def _use(monkeypatch: pytest.MonkeyPatch, library: openssl.LibCrypto) -> None:
    monkeypatch.setattr(openssl, "library", lambda: library)


def test_openssl_failing_to_sign_falls_back_to_python_for_good(monkeypatch: pytest.MonkeyPatch, fresh: None,
                                                               ours: keys.PrivateKey,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """OpenSSL signs, then refuses to (as under a FIPS policy forbidding MD5): that signature and every later
    one are made in Python, right, and a warning says so once."""
    real = _real()
    calls: list[int] = []

    def digest_sign(*args: Any) -> int:
        calls.append(1)
        return int(real.EVP_DigestSign(*args)) if len(calls) <= 2 else 0

    _use(monkeypatch, openssl.LibCrypto(_Doctored(real, EVP_DigestSign=digest_sign)))
    with caplog.at_level(logging.WARNING, logger="cloudassist.agent"):
        for message in (b"a", b"b", b"c", b"d"):  # the probe and "a" through OpenSSL, then it fails
            assert keys.sign_md5(ours, message) == _reference(ours, message)
    assert len(calls) == 3
    assert [r.getMessage() for r in caplog.records] == ["OpenSSL failed to sign; signing in Python from now on"]
    assert keys.backend(ours) == "Python (python-rsa): failed to sign"


def test_a_key_openssl_refuses_or_signs_wrongly_with_is_signed_in_python(
        monkeypatch: pytest.MonkeyPatch, fresh: None, ours: keys.PrivateKey, theirs: crsa.RSAPrivateKey,
        caplog: pytest.LogCaptureFixture) -> None:
    """OpenSSL does not read the key, or its first signature (the probe) does not verify (here: with MD5's
    DigestInfo but another key's numbers): that key is signed in Python, right."""
    real = _real()
    _use(monkeypatch, openssl.LibCrypto(_Doctored(real, d2i_PrivateKey=lambda *args: None)))
    with caplog.at_level(logging.WARNING, logger="cloudassist.agent"):
        assert keys.sign_md5(ours, b"m") == _reference(ours, b"m")
    assert "OpenSSL cannot use the agent's key (OpenSSL did not read the RSA key)" in caplog.text
    assert keys.backend(ours) == "Python (python-rsa): OpenSSL refused the key"

    monkeypatch.setattr(keys, "_native", keys._Native())
    other = keys.load_private_pem(_pkcs8(theirs))
    library = openssl.LibCrypto(real)
    _use(monkeypatch, library)
    expected, pkcs1 = _reference(ours, b"m"), keys._pkcs1
    monkeypatch.setattr(keys, "_pkcs1", lambda key: pkcs1(other))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cloudassist.agent"):
        assert keys.sign_md5(ours, b"m") == expected
    assert keys.backend(ours) == "Python (python-rsa): OpenSSL refused the key"
    assert "OpenSSL's signature with the agent's key does not verify; signing in Python" in caplog.text
