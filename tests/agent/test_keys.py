"""The agent's RSA key without cryptography (agent/keys.py): the same signatures, the same files, old files read.

cryptography made, wrote and used the agent's key before; it is the reference here: for one key and one
message both must give the same signature bytes, and each must read the other's PEM files.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import rsa
import rsa.pem
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric import rsa as crsa

from cloudassist.agent import identity as ident
from cloudassist.agent import keys

MESSAGES = [b"", b"mi-abc" + b"0" * 32 + b"1764000000000" + b"5f0c3c7e-1c2b-4c1e-9a43-6d0f1c9e2b7a",
            "ümlaut ✓".encode(), bytes(range(256)) * 4]


@pytest.fixture(scope="module")
def ours() -> keys.PrivateKey:
    return keys.generate()


@pytest.fixture(scope="module")
def theirs() -> crsa.RSAPrivateKey:
    return crsa.generate_private_key(public_exponent=65537, key_size=2048)


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


def test_signatures_are_those_cryptography_makes_with_the_same_key(ours: keys.PrivateKey,
                                                                   theirs: crsa.RSAPrivateKey) -> None:
    """PKCS#1 v1.5 over MD5 is deterministic: for our key (read by cryptography) and for cryptography's key
    (read by us), every message gets the same 256 signature bytes from both."""
    for key_pem in (keys.private_pem(ours), _pkcs8(theirs)):
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
