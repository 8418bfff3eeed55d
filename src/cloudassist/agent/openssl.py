"""RSA signing through the OpenSSL that the `ssl` module has loaded already, called with ctypes.

The agent signs every request (RSASSA-PKCS1-v1_5 over MD5, agent-protocol §1.2). In pure Python an RSA-2048
signature costs about 6 ms of CPU; OpenSSL takes 0.25 ms (1 ms for a key whose primes differ in size).
cryptography would bring its own copy of OpenSSL and about 9 MB of resident memory; but every agent holds
the system's libcrypto already, since the standard library's `_ssl` links it, and ctypes is loaded already
(proctree uses it). Going through them costs a few kilobytes.

The library is the one `_ssl` uses: its symbols are looked up through `_ssl`'s own handle, opened with
RTLD_NOLOAD (dlsym searches a library and then its dependencies), so nothing new is ever mapped and no
other libcrypto on the system can be picked up by mistake. It must be OpenSSL 1.1.1 or later (3.x on current
systems) and have every function used here; anything else, and `library()` is None with the reason in
`unavailable`, and the caller signs in Python. Signing calls only EVP functions that exist in 1.1.1 and 3.x:

    d2i_PrivateKey(EVP_PKEY_RSA, …, PKCS#1 DER)   once per key, kept (freed when dropped)
    EVP_MD_CTX_new; EVP_DigestSignInit(ctx, NULL, EVP_md5(), NULL, pkey); EVP_DigestSign; EVP_MD_CTX_free

RSA keys sign with PKCS#1 v1.5 padding by default. Any failure leaves the error queue cleared, so that the
`ssl` module never reads an error of ours as one of its own.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

__all__ = ["LibCrypto", "PrivateKey", "Unavailable", "bind", "library", "unavailable"]

MIN_VERSION = 0x10101000  #: OpenSSL 1.1.1 (EVP_DigestSign); 3.0 is 0x30000000
EVP_PKEY_RSA = 6  #: NID_rsaEncryption
OPENSSL_VERSION = 0  #: OpenSSL_version(OPENSSL_VERSION): "OpenSSL 3.0.13 30 Jan 2024"

_c_char_pp = ctypes.POINTER(ctypes.c_char_p)
_c_size_p = ctypes.POINTER(ctypes.c_size_t)
#: name: (restype, argtypes) of every function used.
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "OpenSSL_version_num": (ctypes.c_ulong, []),
    "OpenSSL_version": (ctypes.c_char_p, [ctypes.c_int]),
    "ERR_clear_error": (None, []),
    "d2i_PrivateKey": (ctypes.c_void_p, [ctypes.c_int, ctypes.c_void_p, _c_char_pp, ctypes.c_long]),
    "EVP_PKEY_free": (None, [ctypes.c_void_p]),
    "EVP_md5": (ctypes.c_void_p, []),
    "EVP_MD_CTX_new": (ctypes.c_void_p, []),
    "EVP_MD_CTX_free": (None, [ctypes.c_void_p]),
    "EVP_DigestSignInit": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p],
    ),
    "EVP_DigestSign": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_char_p, _c_size_p, ctypes.c_char_p, ctypes.c_size_t],
    ),
}


class Unavailable(Exception):
    """This OpenSSL cannot be used: a function is missing, it is too old, or MD5 is not allowed."""


class PrivateKey:
    """An RSA private key held by OpenSSL (an EVP_PKEY), freed when this object goes."""

    def __init__(self, library: LibCrypto, handle: int) -> None:
        self._library = library
        self._handle: int | None = handle

    def sign_md5(self, message: bytes, size: int) -> bytes | None:
        """RSASSA-PKCS1-v1_5 over MD5 of `message`; None if OpenSSL failed (its errors are cleared)."""
        return self._library.sign_md5(self._handle, message, size) if self._handle else None

    def __del__(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            self._library.free(handle)


class LibCrypto:
    """The functions of one libcrypto, given the ctypes library object that resolves them."""

    def __init__(self, lib: Any) -> None:
        try:
            functions = {name: getattr(lib, name) for name in _PROTOTYPES}
        except AttributeError as exc:
            raise Unavailable(f"libcrypto lacks a function ({exc})") from None
        for name, (restype, argtypes) in _PROTOTYPES.items():
            functions[name].restype, functions[name].argtypes = restype, argtypes
        self._f = functions
        number = int(functions["OpenSSL_version_num"]())
        if number < MIN_VERSION:
            raise Unavailable(f"OpenSSL {number:#x} is older than 1.1.1")
        self.version = (functions["OpenSSL_version"](OPENSSL_VERSION) or b"OpenSSL").decode(errors="replace")
        self._md5 = functions["EVP_md5"]()
        if not self._md5:
            raise Unavailable("OpenSSL has no MD5")

    def private_key(self, pkcs1_der: bytes) -> PrivateKey:
        """The key of an RSAPrivateKey DER (PKCS#1); Unavailable if OpenSSL does not take it."""
        buffer = ctypes.c_char_p(pkcs1_der)
        handle = self._f["d2i_PrivateKey"](EVP_PKEY_RSA, None, ctypes.byref(buffer), len(pkcs1_der))
        if not handle:
            self._f["ERR_clear_error"]()
            raise Unavailable("OpenSSL did not read the RSA key")
        return PrivateKey(self, handle)

    def sign_md5(self, handle: int | None, message: bytes, size: int) -> bytes | None:
        f = self._f
        context = f["EVP_MD_CTX_new"]()
        if not context:
            f["ERR_clear_error"]()
            return None
        try:
            signature = ctypes.create_string_buffer(size)
            length = ctypes.c_size_t(size)
            if (
                f["EVP_DigestSignInit"](context, None, self._md5, None, handle) != 1
                or f["EVP_DigestSign"](context, signature, ctypes.byref(length), message, len(message)) != 1
            ):
                f["ERR_clear_error"]()  # e.g. MD5 refused (FIPS mode)
                return None
            return signature.raw[: length.value]
        finally:
            f["EVP_MD_CTX_free"](context)

    def free(self, handle: int) -> None:
        self._f["EVP_PKEY_free"](handle)


def bind(path: str | None) -> LibCrypto:
    """The libcrypto that the shared object `path` (None: the main program) has loaded, through its handle;
    Unavailable if `path` is not loaded in this process or does not reach every function used here."""
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
    except OSError as exc:
        raise Unavailable(f"{path or 'the interpreter'} is not loaded: {exc}") from None
    return LibCrypto(lib)


_lock = threading.Lock()
_bound: list[LibCrypto | None] = []  #: [] until tried, then [the library or None]
#: Why `library()` is None ("" while it is not, or not tried yet).
unavailable = ""


def library() -> LibCrypto | None:
    """The libcrypto of the `ssl` module (bound on first use), or None when it cannot be used here."""
    global unavailable
    with _lock:
        if not _bound:
            try:
                import _ssl  # the ssl module's extension; loading it loads libssl and libcrypto

                _bound.append(bind(getattr(_ssl, "__file__", None)))
            except (ImportError, Unavailable) as exc:
                unavailable = str(exc) or type(exc).__name__
                _bound.append(None)
        return _bound[0]
