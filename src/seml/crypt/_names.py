"""File-name encryption exactly as rclone's crypt backend does it.

Three modes: `standard` (EME-AES-256 with the name tweak over the PKCS#7-padded UTF-8 name, then
base32hex lowercase or base64url, both unpadded), `obfuscate` (a keyed character rotation that
hides nothing from a determined reader) and `off` (names kept, `.bin` appended to file names).
Each '/'-separated segment is handled on its own; directory segments only when directory name
encryption is on. A trailing rclone version stamp (`-v2001-02-03-040506-123`) on the last segment
is kept in the clear, as rclone does.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from seml.crypt._eme import BLOCK, MAX_BLOCKS, EmeKey
from seml.errors import IntegrityError, UsageError

__all__ = ["NameCipher"]

FilenameEncryption = Literal["standard", "obfuscate", "off"]
FilenameEncoding = Literal["base32", "base64"]

_OFF_SUFFIX = ".bin"
_FOLDER_CACHE = 4096
_QUOTE = "!"
_VERSION_RE = re.compile(rb"-v[0-9]{4}-[0-9]{2}-[0-9]{2}-[0-9]{6}-[0-9]{3}")
_VERSION_LEN = len("-v2006-01-02-150405.000")
_VERSION_TAIL_RE = re.compile(
    rb"-v([0-9]{4})-([0-9]{2})-([0-9]{2})-([0-9]{2})([0-9]{2})([0-9]{2})-[0-9]{3}"
)
_B32_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUV")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class _BadName(Exception):
    """A segment that does not decode; turned into IntegrityError naming the whole path."""


def _split_ext(name: bytes) -> tuple[bytes, bytes]:
    """Go's path.Ext split, with ".file" counting as a base, as rclone's lib/version does."""
    dot = name.rfind(b".")
    if dot == -1:
        return name, b""
    base, ext = name[:dot], name[dot:]
    if not base:
        return ext, b""
    return base, ext


def _strip_version(name: bytes) -> tuple[bytes, bytes] | None:
    """Return (name without version, version) when `name` carries a valid rclone version stamp."""
    if not _VERSION_RE.search(name):
        return None
    base, ext = _split_ext(name)
    if len(base) < _VERSION_LEN:
        return None
    stamp = base[len(base) - _VERSION_LEN :]
    m = _VERSION_TAIL_RE.fullmatch(stamp)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    days = 29 if month == 2 and _leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= days:
        return None
    return name[: len(base) - _VERSION_LEN] + ext, stamp


def _add_version(name: bytes, stamp: bytes) -> bytes:
    base, ext = _split_ext(name)
    return base + stamp + ext


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _gomod(a: int, n: int) -> int:
    """Go's `%` (truncating), which differs from Python's for a negative `a`."""
    return -(-a % n) if a < 0 else a % n


def _pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def _unpad(data: bytes) -> bytes:
    n = data[-1]
    if not 0 < n <= BLOCK or data[-n:] != bytes([n]) * n:
        raise _BadName("bad padding after decryption (wrong password or not encrypted)")
    return data[:-n]


class NameCipher:
    """Encrypts and decrypts '/'-separated relative paths; pure, no I/O."""

    def __init__(
        self,
        name_key: bytes,
        name_tweak: bytes,
        mode: FilenameEncryption,
        encoding: FilenameEncoding,
        dir_names: bool,
    ) -> None:
        self._eme = EmeKey(name_key)
        self._tweak = name_tweak
        self._mode = mode
        self._encoding = encoding
        self._dir_names = dir_names
        self._rotation = sum(name_key)
        # Folder segments repeat in every path below them (a tree of many small files names
        # the same few folders thousands of times): their mapping is kept, a bounded number.
        self._folders: dict[tuple[bool, str], str] = {}

    def __repr__(self) -> str:
        return f"NameCipher(mode={self._mode!r}, encoding={self._encoding!r})"

    # -- whole paths -------------------------------------------------------------------------

    def encrypt_file_name(self, path: str) -> str:
        if self._mode == "off":
            return path + _OFF_SUFFIX
        return self._encrypt(path)

    def encrypt_dir_name(self, path: str) -> str:
        if self._mode == "off" or not self._dir_names:
            return path
        return self._encrypt(path)

    def decrypt_file_name(self, path: str) -> str:
        if self._mode == "off":
            if len(path) <= len(_OFF_SUFFIX) or not path.endswith(_OFF_SUFFIX):
                raise IntegrityError(f"file name {path!r} does not decode: no '.bin' suffix")
            plain = path[: -len(_OFF_SUFFIX)]
            stripped = _strip_version(plain.encode("utf-8", "surrogatepass"))
            if stripped is not None and not stripped[0]:
                raise IntegrityError(f"file name {path!r} does not decode: only a version stamp")
            return plain
        return self._unmap(path)

    def decrypt_dir_name(self, path: str) -> str:
        if self._mode == "off" or not self._dir_names:
            return path
        return self._unmap(path)

    def _map(self, path: str, encrypt: bool) -> str:
        fn = self._encrypt_segment if encrypt else self._decrypt_segment
        segments = path.split("/")
        last = len(segments) - 1
        out: list[str] = []
        for i, seg in enumerate(segments):
            if i != last:
                if not self._dir_names:
                    out.append(seg)
                    continue
                known = self._folders.get((encrypt, seg))
                if known is not None:
                    out.append(known)
                    continue
            try:
                raw = seg.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raise _BadName("not valid Unicode") from None
            stamp = b""
            if i == last:
                stripped = _strip_version(raw)
                if stripped is not None:
                    raw, stamp = stripped
            enc = fn(raw)
            if stamp:
                enc = _add_version(enc, stamp)
            mapped = enc.decode("utf-8", "surrogateescape")
            if i != last:
                if len(self._folders) >= _FOLDER_CACHE:
                    self._folders.clear()
                self._folders[(encrypt, seg)] = mapped
            out.append(mapped)
        return "/".join(out)

    def _encrypt(self, path: str) -> str:
        try:
            return self._map(path, encrypt=True)
        except _BadName as e:
            raise UsageError(f"file name {path!r} cannot be encrypted: {e}") from None

    def _unmap(self, path: str) -> str:
        try:
            return self._map(path, encrypt=False)
        except _BadName as e:
            raise IntegrityError(f"file name {path!r} does not decode: {e}") from None

    # -- segments ----------------------------------------------------------------------------

    def _encrypt_segment(self, raw: bytes) -> bytes:
        if not raw:
            return b""
        if self._mode == "obfuscate":
            return self._obfuscate(raw)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadName("not valid UTF-8") from None
        padded = _pad(raw)
        if len(padded) // BLOCK > MAX_BLOCKS:
            raise _BadName(f"a segment of {len(raw)} bytes is too long")
        ct = self._eme.encrypt(self._tweak, padded)
        if self._encoding == "base64":
            return base64.urlsafe_b64encode(ct).rstrip(b"=")
        return base64.b32hexencode(ct).rstrip(b"=").lower()

    def _decrypt_segment(self, enc: bytes) -> bytes:
        if not enc:
            return b""
        if self._mode == "obfuscate":
            return self._deobfuscate(enc)
        text = enc.decode("utf-8", "surrogateescape")
        try:
            if self._encoding == "base64":
                if not set(text) <= _B64_CHARS:
                    raise _BadName("not base64url")
                ct = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            else:
                if not set(text) <= _B32_CHARS:
                    raise _BadName("not base32hex")
                ct = base64.b32hexdecode(text.upper() + "=" * (-len(text) % 8))
        except (binascii.Error, ValueError) as e:
            raise _BadName(f"bad {self._encoding} length") from e
        if len(ct) % BLOCK:
            raise _BadName("not a multiple of the block size")
        if not ct:
            raise _BadName("too short")
        if len(ct) > BLOCK * MAX_BLOCKS:
            raise _BadName("too long")
        plain = _unpad(self._eme.decrypt(self._tweak, ct))
        try:
            plain.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadName("not UTF-8 after decryption (wrong password?)") from None
        return plain

    def _obfuscate(self, raw: bytes) -> bytes:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return b"!." + raw
        rot = sum(ord(c) for c in text) % 256
        prefix = f"{rot}."
        rot += self._rotation
        out: list[str] = [prefix]
        for c in text:
            r = ord(c)
            if c == _QUOTE:
                out.append(_QUOTE + _QUOTE)
            elif "0" <= c <= "9":
                out.append(chr(48 + (r - 48 + _gomod(rot, 9) + 1) % 10))
            elif "A" <= c <= "Z" or "a" <= c <= "z":
                pos = r - 65
                if pos >= 26:
                    pos -= 6
                pos = (pos + _gomod(rot, 25) + 1) % 52
                if pos >= 26:
                    pos += 6
                out.append(chr(65 + pos))
            elif 0xA0 <= r <= 0xFF:
                out.append(chr(0xA0 + (r - 0xA0 + _gomod(rot, 95) + 1) % 96))
            elif r >= 0x100:
                base = r - r % 256
                new = base + (r - base + _gomod(rot, 127) + 1) % 256
                if 0xD800 <= new <= 0xDFFF or new > 0x10FFFF:
                    out.append(_QUOTE + c)
                else:
                    out.append(chr(new))
            else:
                out.append(c)
        return "".join(out).encode("utf-8")

    def _deobfuscate(self, enc: bytes) -> bytes:
        dot = enc.find(b".")
        if dot == -1:
            raise _BadName("no '.' in an obfuscated name")
        num, rest = enc[:dot], enc[dot + 1 :]
        if num == b"!":
            return rest
        if not re.fullmatch(rb"[+-]?[0-9]+", num):
            raise _BadName("obfuscated name does not start with a number")
        try:
            text = rest.decode("utf-8")
        except UnicodeDecodeError:
            raise _BadName("obfuscated name is not UTF-8") from None
        if not -(2**63) <= int(num) < 2**63:
            raise _BadName("obfuscated name's number is out of range")
        rot = int(num) + self._rotation
        out: list[str] = []
        quoted = False
        for c in text:
            r = ord(c)
            if quoted:
                out.append(c)
                quoted = False
            elif c == _QUOTE:
                quoted = True
            elif "0" <= c <= "9":
                new = r - (_gomod(rot, 9) + 1)
                out.append(chr(new + 10 if new < 48 else new))
            elif "A" <= c <= "Z" or "a" <= c <= "z":
                pos = r - 65
                if pos >= 26:
                    pos -= 6
                pos -= _gomod(rot, 25) + 1
                if pos < 0:
                    pos += 52
                if pos >= 26:
                    pos += 6
                out.append(chr(65 + pos))
            elif 0xA0 <= r <= 0xFF:
                new = r - (_gomod(rot, 95) + 1)
                out.append(chr(new + 96 if new < 0xA0 else new))
            elif r >= 0x100:
                base = r - r % 256
                new = r - (_gomod(rot, 127) + 1)
                if new < base:
                    new += 256
                if 0xD800 <= new <= 0xDFFF or new > 0x10FFFF:
                    raise _BadName("obfuscated name decodes to an invalid character")
                out.append(chr(new))
            else:
                out.append(c)
        return "".join(out).encode("utf-8")


def _leap(year: int) -> bool:
    """Gregorian leap year (`calendar.isleap`, without importing `calendar` and `datetime`)."""
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
