"""RFC 7512 PKCS#11 URIs: which module, token and key object a `pkcs11:` URI names.

    pkcs11:token=authority;object=release-2030?module-path=/usr/lib/softhsm/libsofthsm2.so

Path attributes (before `?`, separated by `;`): token, manufacturer, serial,
model, object, id (percent-encoded bytes) and type (only `private`, the
default, or `public`). Query attributes (after `?`, separated by `&`):
module-path. Values are percent-decoded. The PIN is never taken from a URI
(`pin-value`, `pin-source` are refused): URIs end up in shell histories and
logs. Unknown standard attributes are refused; vendor ones (`x-...`) ignored.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from builder.core.errors import InputError

SCHEME = "pkcs11:"
_PATH_ATTRIBUTES = frozenset({"token", "manufacturer", "serial", "model", "object", "id", "type"})
_QUERY_ATTRIBUTES = frozenset({"module-path"})
_REFUSED = {
    "pin-value": "the PIN is never read from a URI; use $BOOTHKEY_PKCS11_PIN or the prompt",
    "pin-source": "the PIN is never read from a URI; use $BOOTHKEY_PKCS11_PIN or the prompt",
}
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class TokenUri:
    """The parsed attributes of a `pkcs11:` URI (None: not given)."""

    text: str
    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    object: str | None = None
    id: bytes | None = None
    type: str = "private"
    module_path: str | None = None


def parse_token_uri(text: str) -> TokenUri:
    """Parse `text`; every problem is an `InputError` naming the URI and the attribute."""
    if not text.startswith(SCHEME):
        raise InputError(f"{text!r}: a PKCS#11 URI starts with {SCHEME!r}")
    body = text[len(SCHEME) :]
    path, _, query = body.partition("?")
    values: dict[str, str | bytes] = {}
    for part, separator, allowed in (
        (path, ";", _PATH_ATTRIBUTES),
        (query, "&", _QUERY_ATTRIBUTES),
    ):
        if not part:
            continue
        for attribute in part.split(separator):
            name, equals, raw = attribute.partition("=")
            if not equals or not name:
                raise InputError(f"{text}: {attribute!r} is not NAME=VALUE")
            if name in _REFUSED:
                raise InputError(f"{text}: {name}: {_REFUSED[name]}")
            if name.startswith("x-"):
                continue
            if name not in allowed:
                where = "path" if allowed is _PATH_ATTRIBUTES else "query"
                raise InputError(f"{text}: {name}: not a supported {where} attribute of RFC 7512")
            if name in values:
                raise InputError(f"{text}: {name}: given twice")
            if _PCT.search(raw):
                raise InputError(f"{text}: {name}: '%' must start a two-digit hex escape")
            octets = urllib.parse.unquote_to_bytes(raw)
            if name == "id":
                values[name] = octets
                continue
            try:
                values[name] = octets.decode()
            except UnicodeDecodeError as exc:
                raise InputError(f"{text}: {name}: not UTF-8 once decoded") from exc
    kind = str(values.get("type", "private"))
    if kind not in ("private", "public"):
        raise InputError(f"{text}: type={kind}: boothkey uses keys (type=private or public)")
    raw_id = values.get("id")
    return TokenUri(
        text=text,
        token=_text(values, "token"),
        manufacturer=_text(values, "manufacturer"),
        serial=_text(values, "serial"),
        model=_text(values, "model"),
        object=_text(values, "object"),
        id=bytes(raw_id) if isinstance(raw_id, bytes) else None,
        type=kind,
        module_path=_text(values, "module-path"),
    )


def _text(values: dict[str, str | bytes], name: str) -> str | None:
    value = values.get(name)
    return value if isinstance(value, str) else None
