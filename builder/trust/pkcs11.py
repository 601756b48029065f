"""Keys on PKCS#11 tokens (smartcards, HSMs), named by RFC 7512 URIs.

The private key is generated on the token and never leaves it: boothkey asks
the token to sign and reads back only the public key. Release, observer and
election keys are Ed25519 (CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA, the key id
is sha256 of the raw public key as for file keys); Secure Boot keys are RSA
(CKM_SHA256_RSA_PKCS, what UEFI firmware checks).

The module (the token vendor's PKCS#11 library) comes from the caller
(`--pkcs11-module`), else the URI's `module-path`, else $BOOTHKEY_PKCS11_MODULE;
the user PIN from $BOOTHKEY_PKCS11_PIN, else a prompt (a token with a PIN pad
asks for it itself). python-pkcs11 is imported only here, when a URI is used,
so observers who never sign need not install it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from builder.core.errors import BoothkeyError, InputError, VerificationFailed
from builder.trust.keys import PublicKey, check_key_name
from builder.trust.pkcs11_uri import TokenUri, parse_token_uri

if TYPE_CHECKING:
    import pkcs11

PIN_ENV = "BOOTHKEY_PKCS11_PIN"
MODULE_ENV = "BOOTHKEY_PKCS11_MODULE"
# DER of the Ed25519 OID 1.3.101.112, the CKA_EC_PARAMS of an Ed25519 key.
ED25519_PARAMS = bytes.fromhex("06032b6570")


def _library() -> Any:
    try:
        import pkcs11
    except ImportError as exc:
        raise InputError(
            "a pkcs11: key needs the Python package python-pkcs11 (pip install python-pkcs11)"
        ) from exc
    return pkcs11


def module_path(uri: TokenUri, given: str | None) -> str:
    """The PKCS#11 module: `given`, else the URI's module-path, else $BOOTHKEY_PKCS11_MODULE."""
    path = given or uri.module_path or os.environ.get(MODULE_ENV)
    if not path:
        raise InputError(
            f"{uri.text}: which PKCS#11 module? give --pkcs11-module, module-path= in the URI "
            f"or ${MODULE_ENV} (e.g. /usr/lib/softhsm/libsofthsm2.so)"
        )
    if not os.path.isfile(path):
        raise InputError(f"{uri.text}: PKCS#11 module {path}: no such file")
    return path


def read_pin(uri: TokenUri, token_label: str) -> str:
    """The user PIN from $BOOTHKEY_PKCS11_PIN, else asked on the terminal. Never empty."""
    from_env = os.environ.get(PIN_ENV)
    if from_env is not None:
        if not from_env:
            raise InputError(f"${PIN_ENV} is set but empty")
        return from_env
    pin = getpass.getpass(f"PIN of token {token_label} for {uri.text}: ")
    if not pin:
        raise InputError(f"{uri.text}: an empty PIN is not allowed")
    return pin


# One loaded module per path, and one login per token, shared by every key in use at a
# time (a PKCS#11 application logs in to a token once; all its sessions share it).
_MODULES: dict[str, tuple[Any, list[int]]] = {}
_LOGINS: dict[tuple[str, int], int] = {}


@contextlib.contextmanager
def _loaded_module(uri: TokenUri, path: str) -> Iterator[Any]:
    p11 = _library()
    if path not in _MODULES:
        try:
            _MODULES[path] = (p11.lib(path), [0])
        except p11.PKCS11Error as exc:
            raise InputError(f"{uri.text}: cannot load PKCS#11 module {path}: {exc!r}") from exc
    library, users = _MODULES[path]
    users[0] += 1
    try:
        yield library
    finally:
        users[0] -= 1
        if users[0] == 0:
            del _MODULES[path]
            with contextlib.suppress(p11.PKCS11Error):
                library.finalize()


@contextlib.contextmanager
def token_session(uri: TokenUri, module: str | None, rw: bool = False) -> Iterator[pkcs11.Session]:
    """A logged-in session on the one token `uri` names; closed (and the module finalised
    when no other key uses it) after the block."""
    p11 = _library()
    path = module_path(uri, module)
    with _loaded_module(uri, path) as library:
        token = _find_token(library, uri)
        login = (path, int(token.slot.slot_id))
        if _LOGINS.get(login, 0) > 0:
            pin = None  # this process is logged in to the token already
        elif token.flags & p11.TokenFlag.PROTECTED_AUTHENTICATION_PATH:
            pin = p11.PROTECTED_AUTH  # the reader's PIN pad asks
        else:
            pin = read_pin(uri, token.label)
        try:
            session = token.open(rw=rw, user_pin=pin)
        except p11.PinIncorrect as exc:
            raise InputError(f"{uri.text}: wrong PIN for token {token.label!r}") from exc
        except p11.PinLocked as exc:
            raise InputError(f"{uri.text}: token {token.label!r}: the PIN is locked") from exc
        except p11.PKCS11Error as exc:
            raise InputError(
                f"{uri.text}: cannot log in to token {token.label!r}: {exc!r}"
            ) from exc
        _LOGINS[login] = _LOGINS.get(login, 0) + 1
        try:
            with session:
                yield session
        finally:
            _LOGINS[login] -= 1
            if not _LOGINS[login]:
                del _LOGINS[login]


def _find_token(library: Any, uri: TokenUri) -> Any:
    p11 = _library()
    matches = []
    for slot in library.get_slots(token_present=True):
        token = slot.get_token()
        if not token.flags & p11.TokenFlag.TOKEN_INITIALIZED:
            continue  # an empty slot (SoftHSM always offers one)
        if uri.token is not None and token.label != uri.token:
            continue
        if uri.serial is not None and token.serial.decode(errors="replace").strip() != uri.serial:
            continue
        if uri.manufacturer is not None and token.manufacturer_id != uri.manufacturer:
            continue
        if uri.model is not None and token.model != uri.model:
            continue
        matches.append(token)
    if not matches:
        raise InputError(f"{uri.text}: no token with these attributes is present")
    if len(matches) > 1:
        labels = ", ".join(repr(token.label) for token in matches)
        raise InputError(f"{uri.text}: {len(matches)} tokens match ({labels}); name one (token=)")
    return matches[0]


def find_key(session: Any, uri: TokenUri, object_class: Any, key_type: Any, what: str) -> Any:
    """The one key object of `object_class` and `key_type` whose label/id the URI gives."""
    p11 = _library()
    if uri.object is None and uri.id is None:
        raise InputError(f"{uri.text}: names no key; give object=LABEL (or id=)")
    template: dict[Any, Any] = {p11.Attribute.CLASS: object_class, p11.Attribute.KEY_TYPE: key_type}
    if uri.object is not None:
        template[p11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        template[p11.Attribute.ID] = uri.id
    found = list(session.get_objects(template))
    if not found:
        raise InputError(f"{uri.text}: the token holds no {what} with this label/id")
    if len(found) > 1:
        raise InputError(f"{uri.text}: {len(found)} {what}s match; add id= to choose one")
    return found[0]


def _ed25519_raw(point: bytes, shown: str) -> bytes:
    """The 32 key bytes of CKA_EC_POINT: a DER OCTET STRING (PKCS#11 3.0) or raw bytes."""
    if len(point) == 34 and point[:2] == b"\x04\x20":
        return point[2:]
    if len(point) == 32:
        return point
    raise InputError(f"{shown}: the token's public key is not a 32-byte Ed25519 point")


@dataclass(frozen=True)
class TokenSigner:
    """An Ed25519 key on a token, usable while its session is open (a `signer.Signer`)."""

    name: str
    public: PublicKey
    private: Any  # pkcs11.PrivateKey
    uri: str

    def sign(self, message: bytes) -> bytes:
        p11 = _library()
        try:
            signature = bytes(self.private.sign(message, mechanism=p11.Mechanism.EDDSA))
        except p11.PKCS11Error as exc:
            raise BoothkeyError(f"{self.uri}: the token refused to sign: {exc!r}") from exc
        # A token answering with another key's signature must not produce a release.
        if not self.public.verify(signature, message):
            raise VerificationFailed(
                f"{self.uri}: the token's signature does not verify with its public key"
            )
        return signature


def _ed25519_public(session: Any, uri: TokenUri, name: str) -> PublicKey:
    p11 = _library()
    public = find_key(
        session, uri, p11.ObjectClass.PUBLIC_KEY, p11.KeyType.EC_EDWARDS, "Ed25519 public key"
    )
    if bytes(public[p11.Attribute.EC_PARAMS]) != ED25519_PARAMS:
        raise InputError(
            f"{uri.text}: the key is not Ed25519 (Ed448?); boothkey signs with Ed25519"
        )
    return PublicKey(name, _ed25519_raw(bytes(public[p11.Attribute.EC_POINT]), uri.text))


def _key_name(uri: TokenUri, label: str) -> str:
    try:
        return check_key_name(label)
    except InputError as exc:
        raise InputError(
            f"{uri.text}: the key's label is its boothkey name: {exc.message}"
        ) from exc


@contextlib.contextmanager
def open_token_signer(text: str, module: str | None = None) -> Iterator[TokenSigner]:
    """The Ed25519 key `text` names, ready to sign until the `with` block ends.
    Its label is its boothkey key name (file names, comments)."""
    uri = parse_token_uri(text)
    p11 = _library()
    with token_session(uri, module) as session:
        private = find_key(
            session, uri, p11.ObjectClass.PRIVATE_KEY, p11.KeyType.EC_EDWARDS, "Ed25519 private key"
        )
        name = _key_name(uri, str(private[p11.Attribute.LABEL]))
        public = _ed25519_public(session, uri, name)
        yield TokenSigner(name, public, private, text)


def generate_token_key(text: str, module: str | None = None) -> PublicKey:
    """Generate an Ed25519 key pair on the token, labelled with the URI's object
    (a valid key name); the private key is sensitive and not extractable. Refuses a
    label that is already in use. Returns the public key."""
    uri = parse_token_uri(text)
    if uri.object is None:
        raise InputError(f"{text}: give object=NAME, the new key's label and boothkey name")
    name = _key_name(uri, uri.object)
    p11 = _library()
    with token_session(uri, module, rw=True) as session:
        if list(session.get_objects({p11.Attribute.LABEL: uri.object})):
            raise InputError(f"{text}: the token already holds an object labelled {uri.object!r}")
        parameters = session.create_domain_parameters(
            p11.KeyType.EC_EDWARDS, {p11.Attribute.EC_PARAMS: ED25519_PARAMS}, local=True
        )
        try:
            parameters.generate_keypair(
                store=True,
                label=uri.object,
                id=uri.id,
                mechanism=p11.Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                public_template={p11.Attribute.VERIFY: True},
                private_template=_private_key_template(),
            )
        except p11.PKCS11Error as exc:
            raise BoothkeyError(f"{text}: the token cannot make an Ed25519 key: {exc!r}") from exc
        return _ed25519_public(session, uri, name)


def _private_key_template() -> dict[Any, bool]:
    """A private key made on the token signs, stays on it and is never shown."""
    p11 = _library()
    return {
        p11.Attribute.SIGN: True,
        p11.Attribute.PRIVATE: True,
        p11.Attribute.SENSITIVE: True,
        p11.Attribute.EXTRACTABLE: False,
    }


@dataclass(frozen=True)
class TokenRsaSigner:
    """An RSA key on a token (Secure Boot), usable while its session is open (`rsa.RsaSigner`)."""

    name: str
    private: Any  # pkcs11.PrivateKey
    public: Any  # pkcs11.PublicKey
    uri: str

    def public_key_info(self) -> bytes:
        _library()
        from pkcs11.util.rsa import encode_rsa_public_key

        # python-pkcs11 gives the PKCS#1 RSAPublicKey; wrap it as a SubjectPublicKeyInfo.
        pkcs1 = bytes(encode_rsa_public_key(self.public))
        bit_string = b"\x00" + pkcs1
        algorithm = bytes.fromhex("300d06092a864886f70d0101010500")
        body = algorithm + b"\x03" + _der_length(len(bit_string)) + bit_string
        return b"\x30" + _der_length(len(body)) + body

    def sign_sha256(self, message: bytes) -> bytes:
        p11 = _library()
        try:
            return bytes(self.private.sign(message, mechanism=p11.Mechanism.SHA256_RSA_PKCS))
        except p11.PKCS11Error as exc:
            raise BoothkeyError(f"{self.uri}: the token refused to sign: {exc!r}") from exc


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


@contextlib.contextmanager
def open_token_rsa_signer(text: str, module: str | None = None) -> Iterator[TokenRsaSigner]:
    """The RSA key `text` names (a Secure Boot key), ready to sign until the block ends."""
    uri = parse_token_uri(text)
    p11 = _library()
    with token_session(uri, module) as session:
        private = find_key(
            session, uri, p11.ObjectClass.PRIVATE_KEY, p11.KeyType.RSA, "RSA private key"
        )
        public = find_key(
            session, uri, p11.ObjectClass.PUBLIC_KEY, p11.KeyType.RSA, "RSA public key"
        )
        yield TokenRsaSigner(str(private[p11.Attribute.LABEL]), private, public, text)


@contextlib.contextmanager
def generate_token_rsa_key(
    text: str, module: str | None = None, bits: int = 2048
) -> Iterator[TokenRsaSigner]:
    """Generate an RSA key pair (sensitive, not extractable) on the token under the URI's
    object label, which must be new; the key signs until the `with` block ends (to
    certify itself)."""
    uri = parse_token_uri(text)
    if uri.object is None:
        raise InputError(f"{text}: give object=NAME, the new key's label")
    p11 = _library()
    with token_session(uri, module, rw=True) as session:
        if list(session.get_objects({p11.Attribute.LABEL: uri.object})):
            raise InputError(f"{text}: the token already holds an object labelled {uri.object!r}")
        try:
            public, private = session.generate_keypair(
                p11.KeyType.RSA,
                bits,
                store=True,
                label=uri.object,
                id=uri.id,
                public_template={p11.Attribute.VERIFY: True},
                private_template=_private_key_template(),
            )
        except p11.PKCS11Error as exc:
            raise BoothkeyError(f"{text}: the token cannot make an RSA key: {exc!r}") from exc
        yield TokenRsaSigner(uri.object, private, public, text)
