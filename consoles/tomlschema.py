"""Reading user-written TOML with errors that name the file, the key, what was expected and what was found.

Profiles and show files are both written by people; a typo must be reported
precisely (``show.toml: channel[3].mode: expected one of auto, manual,
excluded, got 'atuo'``) and an unknown key must not be ignored silently.
A reader given a :class:`~.schemarecord.SchemaRecord` also notes every key
it reads, with its type, bounds and choices, so the JSON Schema of a file
is generated from its parser, never written beside it.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .errors import SchemaError

if TYPE_CHECKING:
    from .schemarecord import SchemaRecord

T = TypeVar("T")
_MISSING: Any = object()

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}


#: Byte-order marks of the encodings an editor may save a file in when asked for "Unicode".
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))
_UTF8_BOM = b"\xef\xbb\xbf"


def read_toml(path: Path, error: type[SchemaError]) -> dict[str, Any]:
    """Parse a TOML file, turning IO, encoding and syntax errors into one readable schema error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(str(path), "", "an existing file") from None
    except OSError as exc:
        raise error(str(path), "", f"a readable file ({exc.strerror})") from None
    text = _utf8_text(data, str(path), error)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(str(path), "", f"valid TOML ({exc})") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables by recursion
        raise error(str(path), "", "valid TOML (its arrays or inline tables are nested too deeply to read)") from None


def _utf8_text(data: bytes, path: str, error: type[SchemaError]) -> str:
    """TOML is UTF-8: a file saved as UTF-16 or Latin-1 is named as such, with the fix (a UTF-8 BOM is allowed)."""
    save_as = "save it as UTF-8"
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            raise error(path, "", f"a UTF-8 text file (this one is {encoding}: {save_as})")
    if b"\x00" in data:
        raise error(path, "", f"a UTF-8 text file (this one holds NUL bytes, as a UTF-16 file does: {save_as})")
    data = data.removeprefix(_UTF8_BOM)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise error(path, "", f"a UTF-8 text file (line {line} holds the byte 0x{data[exc.start]:02X}, which is not UTF-8, "
                              f"as in a Latin-1 file: {save_as})") from None


class TableReader:
    """Typed access to one TOML table that remembers which keys were read."""

    def __init__(self, data: dict[str, Any], path: str, prefix: str, error: type[SchemaError],
                 record: "SchemaRecord | None" = None, shape: tuple[str, ...] = ()) -> None:
        self.data = data
        self.path = path
        self.prefix = prefix
        self.error = error
        self._seen: set[str] = set()
        self._record = record
        self._shape = shape  # where this table sits in the schema ("*": any key of its parent)
        self._variant: tuple[str, Any] | None = None

    def _child(self, data: dict[str, Any], prefix: str, shape: str) -> "TableReader":
        return TableReader(data, self.path, prefix, self.error, self._record, self._shape + (shape,))

    def branch(self, name: str, value: Any) -> None:
        """The keys read from here on depend on ``name`` being ``value`` (the schema says so with if/then)."""
        self._variant = (name, value)

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, expected: str, got: object | None = None) -> SchemaError:
        return self.error(self.path, self.key(name), expected, got)

    def has(self, name: str) -> bool:
        return name in self.data

    def get(
        self,
        name: str,
        kind: type[T] | tuple[type, ...],
        default: Any = _MISSING,
        *,
        expected: str | None = None,
        check: Callable[[Any], bool] | None = None,
        schema: dict[str, Any] | None = None,
    ) -> T:
        """The value of ``name`` of type ``kind`` (ints are accepted for floats), else a schema error.

        ``schema``: JSON Schema keywords that say what ``check`` checks, for the generated schema.
        """
        self._seen.add(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        words = expected or " or ".join(_TYPE_WORDS.get(k, k.__name__) for k in kinds)
        if self._record is not None:
            self._record.key(self._shape, name, kinds, words, schema or {}, required=default is _MISSING,
                             variant=self._variant)
        if name not in self.data:
            if default is _MISSING:
                raise self.fail(name, words + " (the key is required)")
            return default
        value = self.data[name]
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(name, words, value)
        if not isinstance(value, kinds):
            raise self.fail(name, words, value)
        if check is not None and not check(value):
            raise self.fail(name, words, value)
        return value  # type: ignore[return-value]

    def choice(self, name: str, options: tuple[str, ...] | list[str], default: Any = _MISSING) -> str:
        return self.get(name, str, default, expected="one of " + ", ".join(options), check=lambda v: v in options,
                        schema={"enum": list(options)})

    def number(self, name: str, default: Any = _MISSING, *, low: float | None = None, high: float | None = None) -> float:
        words = "a number"
        if low is not None and high is not None:
            words = f"a number in {low:g}..{high:g}"
        elif low is not None:
            words = f"a number >= {low:g}"
        elif high is not None:
            words = f"a number <= {high:g}"

        def in_range(value: float) -> bool:
            return (low is None or value >= low) and (high is None or value <= high)

        bounds = {k: v for k, v in (("minimum", low), ("maximum", high)) if v is not None}
        return self.get(name, float, default, expected=words, check=in_range, schema=bounds)

    def integer(self, name: str, default: Any = _MISSING, *, low: int | None = None, high: int | None = None) -> int:
        words = f"an integer in {low}..{high}" if low is not None and high is not None else "an integer"
        bounds = {k: v for k, v in (("minimum", low), ("maximum", high)) if v is not None}
        return self.get(
            name, int, default, expected=words,
            check=lambda v: (low is None or v >= low) and (high is None or v <= high), schema=bounds,
        )

    def table(self, name: str, *, required: bool = False) -> "TableReader | None":
        if name not in self.data and not required:
            self._seen.add(name)
            return None
        value = self.get(name, dict, _MISSING if required else None, expected="a table")  # present here: no default used
        return self._child(value, self.key(name), name)

    def each_table(self) -> list[tuple[str, "TableReader"]]:
        """Every key of this table, each holding a table (a table of named items: any key is allowed)."""
        if self._record is not None:
            self._record.any_key(self._shape)
        readers = []
        for name in list(self.data):
            self._seen.add(name)
            value = self.data[name]
            if not isinstance(value, dict):
                raise self.fail(name, "a table", value)
            readers.append((name, self._child(value, self.key(name), "*")))
        return readers

    def tables(self, name: str) -> list["TableReader"]:
        """An array of tables (``[[name]]``), possibly empty."""
        items = self.get(name, list, [], expected="an array of tables ([[" + name + "]])")
        readers = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise self.error(self.path, f"{self.key(name)}[{index}]", "a table", item)
            readers.append(self._child(item, f"{self.key(name)}[{index}]", name + "[]"))
        return readers

    def finish(self) -> None:
        """Refuse keys nobody read: a misspelt key must not be ignored."""
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise self.fail(unknown[0], "no such key (known: " + ", ".join(sorted(self._seen)) + ")")
