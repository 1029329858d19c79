"""What the kernel reads of a WebAssembly module: its exported functions, their types, and its default entry.

Enough to pick the entry a task calls when the submitter names none (docs/task-abi.md), without a runner:
the type, import, function and export sections of the binary format
(https://webassembly.github.io/spec/core/binary/modules.html). The runner still checks the whole module
when it runs it; this reader only names an export.
"""

from __future__ import annotations

#: ``\0asm`` and binary format version 1.
_HEADER = b"\0asm\x01\0\0\0"
_VALUE_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref", 0x6F: "externref"}
_TYPE, _IMPORT, _FUNCTION, _EXPORT = 1, 2, 3, 7
#: The export that marks the GAIA ABI, and the type of its entries.
ALLOC_EXPORT = "gaia_alloc"
GAIA_ENTRY = (("i32", "i32"), ("i64",))
#: The entry of a WASI command.
WASI_START = "_start"

Signature = tuple[tuple[str, ...], tuple[str, ...]]


class _Reader:
    """Bytes read front to back: single bytes, LEB128 integers, names."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.data)

    def take(self, count: int) -> bytes:
        if self.pos + count > len(self.data):
            raise ValueError("the module is truncated")
        self.pos += count
        return self.data[self.pos - count:self.pos]

    def byte(self) -> int:
        return self.take(1)[0]

    def uint(self) -> int:
        value = shift = 0
        while shift < 64:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise ValueError("the module holds a malformed integer")

    def name(self) -> str:
        return self.take(self.uint()).decode("utf-8", errors="replace")

    def value_type(self) -> str:
        code = self.byte()
        if code not in _VALUE_TYPES:
            raise ValueError(f"the module uses value type 0x{code:02x}, which this reader does not know")
        return _VALUE_TYPES[code]

    def limits(self) -> None:
        flags = self.byte()
        self.uint()
        if flags & 1:
            self.uint()


def _skip_import(body: _Reader, kind: int) -> None:
    """Read past an imported table (1), memory (2), global (3) or tag (4)."""
    if kind == 1:
        body.byte()
        body.limits()
    elif kind == 2:
        body.limits()
    elif kind == 3:
        body.value_type()
        body.byte()
    elif kind == 4:
        body.byte()
        body.uint()
    else:
        raise ValueError(f"the module imports something of unknown kind 0x{kind:02x}")


def function_exports(module: bytes) -> dict[str, Signature]:
    """Each exported function's name and ``(params, results)``; ValueError when ``module`` cannot be read."""
    reader = _Reader(module)
    if reader.take(len(_HEADER)) != _HEADER:
        raise ValueError("the file is not a WebAssembly module (binary format version 1)")
    types: list[Signature] = []
    functions: list[int] = []  # the type of each function: imported ones first, as the index space has them
    exports: dict[str, int] = {}
    while reader.more():
        section = reader.byte()
        body = _Reader(reader.take(reader.uint()))
        if section == _TYPE:
            for _ in range(body.uint()):
                if body.byte() != 0x60:
                    raise ValueError("the module declares a type other than a function type")
                params = tuple(body.value_type() for _ in range(body.uint()))
                types.append((params, tuple(body.value_type() for _ in range(body.uint()))))
        elif section == _IMPORT:
            for _ in range(body.uint()):
                body.name()
                body.name()
                kind = body.byte()
                if kind == 0:
                    functions.append(body.uint())
                else:
                    _skip_import(body, kind)
        elif section == _FUNCTION:
            functions.extend(body.uint() for _ in range(body.uint()))
        elif section == _EXPORT:
            for _ in range(body.uint()):
                name, kind, index = body.name(), body.byte(), body.uint()
                if kind == 0:
                    exports[name] = index
    try:
        return {name: types[functions[index]] for name, index in exports.items()}
    except IndexError:
        raise ValueError("the module exports a function it does not define") from None


def default_entry(module: bytes) -> str:
    """The entry a task of ``module`` calls when none is named, by the ABI the runner will detect.

    GAIA ABI (``gaia_alloc`` exported): its one ``(i32, i32) -> i64`` export; WASI command: ``_start``.
    ValueError, naming the candidates, when there is none or more than one.
    """
    functions = function_exports(module)
    if functions.get(ALLOC_EXPORT) == (("i32",), ("i32",)):
        entries = sorted(name for name, signature in functions.items() if signature == GAIA_ENTRY)
        if len(entries) == 1:
            return entries[0]
        if not entries:
            raise ValueError("the module follows the GAIA ABI but exports no entry of type (i32, i32) -> i64")
        raise ValueError(f"the module exports {len(entries)} entries ({', '.join(entries)}); name one")
    if functions.get(WASI_START) == ((), ()):
        return WASI_START
    raise ValueError(f"the module exports neither {ALLOC_EXPORT} (GAIA ABI) nor {WASI_START} (WASI command)")
