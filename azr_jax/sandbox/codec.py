"""A data codec for Python values: what crosses from a sandboxed child to the process that judges it.

A child computes a candidate value (a function's output, an evaluated answer) and sends it as a
JSON tree built only from data: numbers, strings, bytes, containers and a few trusted standard-library
value types. The judging process rebuilds the value with its own constructors and compares it with
`==` there, so no object made by model-written code, and no `__eq__`/`__hash__`/`__iter__` it defines,
ever takes part in a verdict. Anything else (functions, instances of the program's classes, numpy
arrays, values nested deeper than MAX_DEPTH, cycles) is encoded as *opaque*, which equals nothing.

Conversions follow Python's own equality: a subclass of a built-in type whose `__eq__` is the
built-in one is sent as that built-in value (namedtuples as tuples, IntEnum members as ints, numpy
float64 as float), read through the base type's C methods so an overridden `__iter__` or `items`
cannot change what is sent; other registered numbers (numpy integers, sympy Integer/Rational/Float)
are sent as int, Fraction, float or complex. The encoder imports nothing heavy: it runs in every child.

Wire form (JSON): None, bool, str, finite float and int below 2**53 as themselves; list as a JSON
array; everything else as a one-key object {tag: payload} (tags below).
"""

from __future__ import annotations

import sys

MAX_DEPTH = 200
# Default budgets of one encoded value: containers + scalars, and characters of str/bytes payloads.
MAX_NODES = 1_000_000
MAX_CHARS = 1 << 24
_SAFE_INT = 1 << 53

T_INT, T_FLOAT, T_TUPLE, T_DICT, T_SET, T_FROZENSET = "i", "f", "t", "d", "s", "z"
T_BYTES, T_BYTEARRAY, T_COMPLEX, T_RANGE, T_FRACTION, T_DECIMAL = "b", "y", "c", "r", "q", "m"
T_COUNTER, T_ORDERED, T_DEFAULT, T_DEQUE = "C", "O", "D", "Q"
T_ELLIPSIS, T_NOTIMPL, T_OPAQUE = "e", "n", "x"


class ValueTooLarge(Exception):
    """The value needs more than the encoding budget (it cannot equal any stored gold)."""


class DecodeError(ValueError):
    """A wire tree that is not a valid encoding."""


_MRO_OF = type.__dict__["__mro__"].__get__  # read past any metaclass trickery
_DICT_OF = type.__dict__["__dict__"].__get__
_NAME_OF = type.__dict__["__qualname__"].__get__
_SLOT_WRAPPER = type(object.__eq__)
_id, _type, _len, _repr = id, type, len, repr
_dict_items = dict.items
_float_repr = float.__repr__


def eq_owner(kind: type) -> type:
    """The class (in `kind`'s MRO) whose `__eq__` instances of `kind` use."""
    for base in _MRO_OF(kind):
        if "__eq__" in _DICT_OF(base):
            return base
    return object


def has_native_eq(kind: type) -> bool:
    """True if instances of `kind` compare with an `__eq__` written in C, not in Python."""
    return _type(_DICT_OF(eq_owner(kind))["__eq__"]) is _SLOT_WRAPPER


def _type_name(kind: type) -> str:
    try:
        name = _NAME_OF(kind)
        return name if isinstance(name, str) else "?"
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def _counter_type():
    """Counter lives in Python-level `collections`; only look for it if the job imported it."""
    counter = getattr(sys.modules.get("collections"), "Counter", None)
    return counter if isinstance(counter, type) else None


def _stdlib_numbers() -> tuple:
    """(Fraction, Decimal) classes if loaded (nothing of those types exists otherwise)."""
    frac = getattr(sys.modules.get("fractions"), "Fraction", None)
    dec = getattr(sys.modules.get("decimal"), "Decimal", None)
    return (frac if isinstance(frac, type) else None, dec if isinstance(dec, type) else None)


try:  # C implementations of the collections value types (always built in)
    import _collections

    _OrderedDict = _collections.OrderedDict
    _defaultdict = _collections.defaultdict
    _deque = _collections.deque
except Exception:  # pragma: no cover - every CPython has them
    _OrderedDict = _defaultdict = _deque = None


class Encoder:
    """One value -> wire tree, within a node and character budget."""

    def __init__(self, max_nodes: int = MAX_NODES, max_chars: int = MAX_CHARS):
        self.nodes = max_nodes
        self.chars = max_chars
        self.active: set[int] = set()
        self.counter = _counter_type()
        self.fraction, self.decimal = _stdlib_numbers()

    def _spend(self, chars: int = 0) -> None:
        self.nodes -= 1
        self.chars -= chars
        if self.nodes < 0 or self.chars < 0:
            raise ValueTooLarge("value exceeds the encoding budget")

    def encode(self, x, depth: int = 0):
        kind = _type(x)
        if kind is str:
            self._spend(_len(x))
            return x
        if kind is int:
            self._spend()
            if -_SAFE_INT < x < _SAFE_INT:
                return x
            text = format(x, "x")
            self._spend(_len(text))
            return {T_INT: text}
        if kind is bool or x is None:
            self._spend()
            return x
        if kind is float:
            self._spend()
            return x if x - x == 0.0 else {T_FLOAT: _float_repr(x)}
        if depth >= MAX_DEPTH:
            return {T_OPAQUE: "nested deeper than %d" % MAX_DEPTH}
        if kind is list:
            return self._seq(x, None, depth)
        if kind is tuple:
            return self._seq(x, T_TUPLE, depth)
        if kind is dict:
            return self._pairs(_dict_items(x), T_DICT, x, depth)
        if kind is set:
            return self._seq(x, T_SET, depth)
        if kind is frozenset:
            return self._seq(x, T_FROZENSET, depth)
        if kind is bytes or kind is bytearray:
            self._spend(_len(x))
            return {T_BYTES if kind is bytes else T_BYTEARRAY: x.decode("latin-1")}
        if kind is complex:
            self._spend()
            return {T_COMPLEX: [self.encode(x.real), self.encode(x.imag)]}
        if kind is range:
            self._spend()
            return {T_RANGE: [self.encode(x.start), self.encode(x.stop), self.encode(x.step)]}
        if x is Ellipsis:
            self._spend()
            return {T_ELLIPSIS: 0}
        if x is NotImplemented:
            self._spend()
            return {T_NOTIMPL: 0}
        return self._other(x, kind, depth)

    def _seq(self, items, tag, depth: int):
        self._spend()
        key = _id(items)
        if key in self.active:
            return {T_OPAQUE: "cycle"}
        self.active.add(key)
        try:
            out = [self.encode(v, depth + 1) for v in items]
        finally:
            self.active.discard(key)
        return out if tag is None else {tag: out}

    def _pairs(self, pairs, tag, owner, depth: int):
        self._spend()
        key = _id(owner)
        if key in self.active:
            return {T_OPAQUE: "cycle"}
        self.active.add(key)
        try:
            out = [[self.encode(k, depth + 1), self.encode(v, depth + 1)] for k, v in pairs]
        finally:
            self.active.discard(key)
        return {tag: out}

    def _other(self, x, kind: type, depth: int):
        """Subclasses of built-in types, trusted library values, registered numbers; else opaque."""
        owner = eq_owner(kind)
        if self.counter is not None and owner is self.counter and issubclass(kind, dict):
            # Counter: its __eq__ is the standard library's, rebuilt on the judging side.
            return self._pairs(list(_dict_items(x)), T_COUNTER, x, depth)
        if _type(_DICT_OF(owner)["__eq__"]) is _SLOT_WRAPPER:  # equality written in C
            if _OrderedDict is not None and issubclass(kind, _OrderedDict):
                return self._pairs(list(_OrderedDict.items(x)), T_ORDERED, x, depth)
            if _defaultdict is not None and issubclass(kind, _defaultdict):
                return self._pairs(list(_dict_items(x)), T_DEFAULT, x, depth)
            if _deque is not None and issubclass(kind, _deque):
                return self._seq(list(_deque.__iter__(x)), T_DEQUE, depth)
            for base, convert in _NATIVE_BASES:
                if issubclass(kind, base):
                    return self.encode(convert(x), depth)
        frac, dec = self.fraction, self.decimal
        if frac is not None and kind is frac:
            self._spend()
            return {T_FRACTION: [self.encode(int(x.numerator)), self.encode(int(x.denominator))]}
        if dec is not None and kind is dec:
            text = dec.__str__(x)
            self._spend(_len(text))
            return {T_DECIMAL: text}
        number = self._number(x, kind)
        if number is not None:
            return number
        self._spend()
        return {T_OPAQUE: _type_name(kind)}

    def _number(self, x, kind: type):
        """numpy/sympy scalars and other registered numbers, as the built-in number they equal."""
        if getattr(kind, "__module__", None) == "numpy" and _type_name(kind) in ("bool", "bool_"):
            return self.encode(bool(x))
        numbers = sys.modules.get("numbers")
        if numbers is None:
            return None
        try:
            if isinstance(x, numbers.Integral):
                return self.encode(int(x))
            if isinstance(x, numbers.Rational):
                self._spend()
                return {T_FRACTION: [self.encode(int(x.numerator)), self.encode(int(x.denominator))]}
            if isinstance(x, numbers.Real):
                return self.encode(float(x))
            if isinstance(x, numbers.Complex):
                return self.encode(complex(x))
        except (ValueTooLarge, RecursionError, MemoryError):
            raise
        except Exception:  # noqa: BLE001 - a number that cannot convert is opaque
            return None
        return None


def _complex_of(x):
    return complex(complex.real.__get__(x), complex.imag.__get__(x))


# Built-in bases, most specific first (bool cannot be subclassed), read with the base's C methods.
_NATIVE_BASES = (
    (int, int.__int__),
    (float, float.__float__),
    (complex, _complex_of),
    (str, str.__str__),
    (bytes, lambda x: bytes.__getitem__(x, slice(None))),
    (bytearray, bytearray.copy),
    (list, list.copy),
    (tuple, lambda x: tuple.__getitem__(x, slice(None))),
    (dict, dict.copy),
    (set, set.copy),
    (frozenset, frozenset.copy),
)


def encode(value, max_nodes: int = MAX_NODES, max_chars: int = MAX_CHARS):
    """Wire tree of `value` (raises ValueTooLarge past the budget)."""
    return Encoder(max_nodes, max_chars).encode(value)


def encode_call(args: tuple, kwargs: dict, max_nodes: int = MAX_NODES, max_chars: int = MAX_CHARS) -> list:
    """Wire form of a call's arguments: [positional list, [[name, value], ...]]."""
    enc = Encoder(max_nodes, max_chars)
    return [[enc.encode(a, 1) for a in args], [[k, enc.encode(v, 1)] for k, v in kwargs.items()]]


# ---------------------------------------------------------------------------------------- decoding
class Opaque:
    """Stands for a value that is not data: equal to nothing, itself included."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __eq__(self, other):
        return False

    def __ne__(self, other):
        return True

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<opaque {self.name}>"


def _decode_int(text) -> int:
    if not isinstance(text, str) or not 0 < len(text) <= 1 << 22:
        raise DecodeError("bad big int")
    return int(text, 16)  # base 16 is exempt from the int/str digit limit


def _decode_float(text) -> float:
    if text not in ("inf", "-inf", "nan"):
        raise DecodeError("bad float tag")
    return float(text)


class Decoder:
    """Wire tree -> value built only from trusted types. Raises DecodeError on anything else."""

    def __init__(self, allow_opaque: bool = True):
        self.allow_opaque = allow_opaque

    def decode(self, tree, depth: int = 0):
        kind = type(tree)
        if kind is str or kind is bool or tree is None or kind is int:
            return tree
        if kind is float:
            return tree
        if depth > MAX_DEPTH + 2:
            raise DecodeError("wire tree too deep")
        if kind is list:
            return [self.decode(v, depth + 1) for v in tree]
        if kind is not dict or len(tree) != 1:
            raise DecodeError(f"unexpected {kind.__name__} in a wire tree")
        ((tag, payload),) = tree.items()
        handler = self._HANDLERS.get(tag)
        if handler is None:
            raise DecodeError(f"unknown tag {tag!r}")
        return handler(self, payload, depth + 1)

    def _items(self, payload, depth: int) -> list:
        if type(payload) is not list:
            raise DecodeError("container payload must be a list")
        return [self.decode(v, depth) for v in payload]

    def _pairs(self, payload, depth: int) -> list:
        if type(payload) is not list:
            raise DecodeError("mapping payload must be a list")
        out = []
        for pair in payload:
            if type(pair) is not list or len(pair) != 2:
                raise DecodeError("mapping item must be a [key, value] pair")
            out.append((self.decode(pair[0], depth), self.decode(pair[1], depth)))
        return out

    def _hashable(self, build, items):
        try:
            return build(items)
        except TypeError as exc:
            raise DecodeError(f"unhashable key or element: {exc}") from None

    def _number(self, payload, depth: int, kinds: tuple):
        value = self.decode(payload, depth)
        if type(value) not in kinds:
            raise DecodeError("number payload of the wrong type")
        return value

    def _complex(self, payload, depth: int):
        if type(payload) is not list or len(payload) != 2:
            raise DecodeError("complex payload must be [re, im]")
        re_, im = (self._number(p, depth, (float, int)) for p in payload)
        return complex(re_, im)

    def _range(self, payload, depth: int):
        if type(payload) is not list or len(payload) != 3:
            raise DecodeError("range payload must be [start, stop, step]")
        parts = [self._number(p, depth, (int,)) for p in payload]
        try:
            return range(*parts)
        except ValueError as exc:
            raise DecodeError(str(exc)) from None

    def _fraction(self, payload, depth: int):
        from fractions import Fraction

        if type(payload) is not list or len(payload) != 2:
            raise DecodeError("fraction payload must be [numerator, denominator]")
        num, den = (self._number(p, depth, (int,)) for p in payload)
        if den == 0:
            raise DecodeError("fraction with zero denominator")
        return Fraction(num, den)

    def _decimal(self, payload, depth: int):
        from decimal import Decimal, InvalidOperation

        if type(payload) is not str or len(payload) > 1 << 16:
            raise DecodeError("decimal payload must be a short string")
        try:
            return Decimal(payload)
        except (InvalidOperation, ValueError) as exc:
            raise DecodeError(f"bad decimal: {exc}") from None

    def _bytes(self, payload, build):
        if type(payload) is not str:
            raise DecodeError("bytes payload must be a string")
        try:
            return build(payload.encode("latin-1"))
        except UnicodeEncodeError:
            raise DecodeError("bytes payload outside latin-1") from None

    def _opaque(self, payload, depth: int):
        if not self.allow_opaque:
            raise DecodeError("an opaque value cannot be used here")
        return Opaque(payload if type(payload) is str else "?")

    def _tagged(self, payload, depth: int, kind: str):
        if type(payload) is not int:
            raise DecodeError("marker payload must be an int")
        return Ellipsis if kind == "e" else NotImplemented

    def _counter(self, payload, depth):
        from collections import Counter

        return self._hashable(lambda p: Counter(dict(p)), self._pairs(payload, depth))

    _HANDLERS = {
        T_INT: lambda self, p, d: _decode_int(p),
        T_FLOAT: lambda self, p, d: _decode_float(p),
        T_TUPLE: lambda self, p, d: tuple(self._items(p, d)),
        T_DICT: lambda self, p, d: self._hashable(dict, self._pairs(p, d)),
        T_SET: lambda self, p, d: self._hashable(set, self._items(p, d)),
        T_FROZENSET: lambda self, p, d: self._hashable(frozenset, self._items(p, d)),
        T_BYTES: lambda self, p, d: self._bytes(p, bytes),
        T_BYTEARRAY: lambda self, p, d: self._bytes(p, bytearray),
        T_COMPLEX: _complex,
        T_RANGE: _range,
        T_FRACTION: _fraction,
        T_DECIMAL: _decimal,
        T_COUNTER: _counter,
        T_ORDERED: lambda self, p, d: self._hashable(_OrderedDict, self._pairs(p, d)),
        T_DEFAULT: lambda self, p, d: self._hashable(lambda x: _defaultdict(None, x), self._pairs(p, d)),
        T_DEQUE: lambda self, p, d: _deque(self._items(p, d)),
        T_ELLIPSIS: lambda self, p, d: self._tagged(p, d, "e"),
        T_NOTIMPL: lambda self, p, d: self._tagged(p, d, "n"),
        T_OPAQUE: _opaque,
    }


def decode(tree, allow_opaque: bool = True):
    """Value of a wire tree (DecodeError if it is not a valid encoding, whatever is wrong with it)."""
    try:
        return Decoder(allow_opaque).decode(tree)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("wire tree too deep") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - e.g. a bad hex int, an out-of-range number
        raise DecodeError(f"{type(exc).__name__}: {exc}") from None


def decode_call(tree) -> tuple[tuple, dict]:
    """(args, kwargs) of an `encode_call` tree; no opaque values allowed."""
    if type(tree) is not list or len(tree) != 2 or type(tree[0]) is not list or type(tree[1]) is not list:
        raise DecodeError("call payload must be [args, kwargs]")
    args = tuple(decode(a, allow_opaque=False) for a in tree[0])
    kwargs = {}
    for item in tree[1]:
        if type(item) is not list or len(item) != 2 or type(item[0]) is not str:
            raise DecodeError("keyword argument must be [name, value]")
        kwargs[item[0]] = decode(item[1], allow_opaque=False)
    return args, kwargs


def contains_opaque(tree) -> bool:
    """True if a wire tree holds an opaque value anywhere (iterative; trees are depth-bounded)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(node)
        elif type(node) is dict:
            for tag, payload in node.items():
                if tag == T_OPAQUE:
                    return True
                stack.append(payload)
    return False


# ---------------------------------------------------------------------------------------- JSON text
try:  # the C encoder of the json package, without importing json (and re) in the child
    import _json

    _c_encoder = _json.make_encoder(
        None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, False
    )

    def dumps(tree) -> str:
        """Compact JSON of a wire tree (or any JSON-able dict of them)."""
        return "".join(_c_encoder(tree, 0))

except Exception:  # pragma: no cover - CPython always has _json
    import json as _json_module

    def dumps(tree) -> str:
        return _json_module.dumps(tree, separators=(",", ":"), allow_nan=False)
