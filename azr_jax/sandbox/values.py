"""Model-written text read as data, and the comparison every verdict uses.

`parse_literal` turns a stored gold output, a predicted output or an argument list into a Python
value without executing anything: it walks the AST and accepts only literals (numbers, strings,
bytes, containers, `...`), signs and the arithmetic that reprs contain (`-3`, `1/2`, `(1+2j)`),
and calls of a fixed set of trusted constructors (`set()`, `frozenset({..})`, `range(..)`,
`Counter({..})`, `deque([..])`, `OrderedDict(..)`, `Fraction(..)`, `Decimal('..')`, numpy scalars
such as `np.int64(5)`, `float('inf')`, ...) whose arguments are themselves literal displays, so the
size of the value is bounded by the size of the text. A name resolves only the way it would in
the namespace that evaluates the text officially: built-ins unless the program rebinds them, and
what the program's own import statements bind (`from collections import Counter` makes
`Counter(...)` data; `import collections` makes `collections.Counter(...)` data).

`same_value(gold, candidate)` is Python `==` between two values built only by this module or by
`codec.decode`: no object, method or hash function made by model-written code takes part.

The evaluation harness can use these too: `literal_equal(a_text, b_text)` compares two texts as data.
"""

from __future__ import annotations

import ast
import collections
import decimal
import fractions
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

MAX_TEXT_CHARS = 200_000
MAX_NODES = 200_000
_MAX_ARITH_BITS = 1 << 16  # operands of * and / in a literal (sympy Rational reprs are small)


class NotData(ValueError):
    """The text is not a literal this parser accepts (it would need code to evaluate)."""


# ------------------------------------------------------------------------------- constructors
def _no_kwargs(kwargs: dict, name: str) -> None:
    if kwargs:
        raise NotData(f"{name}() takes no keyword arguments here")


def _iterating(kind: Callable, name: str, allow_kwargs: bool = False) -> Callable:
    """A container constructor taking at most one literal display (checked by the caller)."""

    def build(args: list, kwargs: dict, displays: list[bool]) -> Any:
        if not allow_kwargs:
            _no_kwargs(kwargs, name)
        if len(args) > 1 or not all(displays):
            raise NotData(f"{name}() needs at most one literal display argument")
        return kind(*args, **kwargs)

    return build


def _scalar(kind: Callable, name: str, arg_types: tuple, max_args: int = 1) -> Callable:
    def build(args: list, kwargs: dict, displays: list[bool]) -> Any:
        _no_kwargs(kwargs, name)
        if len(args) > max_args or not all(type(a) in arg_types for a in args):
            raise NotData(f"{name}() with arguments that are not plain data")
        return kind(*args)

    return build


def _range(args: list, kwargs: dict, displays: list[bool]) -> range:
    _no_kwargs(kwargs, "range")
    if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
        raise NotData("range() takes 1-3 ints")
    return range(*args)


def _deque(args: list, kwargs: dict, displays: list[bool]) -> collections.deque:
    if set(kwargs) - {"maxlen"} or len(args) > 2 or (args and not displays[0]):
        raise NotData("deque() with unexpected arguments")
    maxlen = kwargs.get("maxlen", args[1] if len(args) == 2 else None)
    if maxlen is not None and type(maxlen) is not int:
        raise NotData("deque maxlen must be an int")
    return collections.deque(args[0] if args else (), maxlen)


def _value_of(value: Any) -> Callable:
    def build(args: list, kwargs: dict, displays: list[bool]) -> Any:
        raise NotData("not a constructor")

    build.value = value  # type: ignore[attr-defined]
    return build


_NUM = (int, float, bool)
_BUILTIN_CTORS: dict[str, Callable] = {
    "set": _iterating(set, "set"),
    "frozenset": _iterating(frozenset, "frozenset"),
    "tuple": _iterating(tuple, "tuple"),
    "list": _iterating(list, "list"),
    "dict": _iterating(dict, "dict", allow_kwargs=True),
    "bytearray": _scalar(bytearray, "bytearray", (bytes,)),
    "bytes": _scalar(bytes, "bytes", (bytes,)),
    "range": _range,
    "float": _scalar(float, "float", (str, int, float)),
    "int": _scalar(int, "int", (str, int, bool)),
    "complex": _scalar(complex, "complex", (str, int, float), max_args=2),
}
_COLLECTIONS = {
    "Counter": _iterating(collections.Counter, "Counter", allow_kwargs=True),
    "OrderedDict": _iterating(collections.OrderedDict, "OrderedDict"),
    "deque": _deque,
}
_FRACTIONS = {"Fraction": _scalar(fractions.Fraction, "Fraction", (int, str), max_args=2)}
_DECIMAL = {"Decimal": _scalar(decimal.Decimal, "Decimal", (str, int))}
_MATH = {"inf": _value_of(math.inf), "nan": _value_of(math.nan)}
_NUMPY: dict[str, Callable] = {"inf": _value_of(math.inf), "nan": _value_of(math.nan)}
for _n in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intc", "intp", "uint"):
    _NUMPY[_n] = _scalar(int, _n, (int, bool))
for _n in ("float16", "float32", "float64", "double", "half", "single", "longdouble"):
    _NUMPY[_n] = _scalar(float, _n, _NUM)
for _n in ("complex64", "complex128", "cdouble"):
    _NUMPY[_n] = _scalar(complex, _n, _NUM)
_NUMPY["bool_"] = _NUMPY["bool"] = _scalar(bool, "bool_", (bool, int))
_NUMPY["str_"] = _scalar(str, "str_", (str,))
_NUMPY["True_"], _NUMPY["False_"] = _value_of(True), _value_of(False)
_MODULES: dict[str, dict[str, Callable]] = {
    "collections": _COLLECTIONS,
    "fractions": _FRACTIONS,
    "decimal": _DECIMAL,
    "math": _MATH,
    "numpy": _NUMPY,
}


class _ModuleRef:
    """A name bound to a trusted module by an import statement (`import numpy as np`)."""

    def __init__(self, name: str):
        self.name = name

    def attribute(self, attr: str) -> Callable | _ModuleRef:
        members = _MODULES.get(self.name, {})
        if attr in members:
            return members[attr]
        raise NotData(f"{self.name}.{attr} is not a data constructor")


Names = Mapping[str, Any]
BUILTIN_NAMES: dict[str, Any] = {
    **_BUILTIN_CTORS,
    "Ellipsis": _value_of(Ellipsis),
    "NotImplemented": _value_of(NotImplemented),
}
# The official deduction check evaluates both texts in its executor module, which imports numpy as np.
DEDUCTION_NAMES: dict[str, Any] = {**BUILTIN_NAMES, "np": _ModuleRef("numpy")}


# ---------------------------------------------------------------------------------------- names
@functools.lru_cache(maxsize=512)
def names_of_program(source: str) -> Mapping[str, Any]:
    """The data names of a program's module namespace, found without executing it.

    Built-ins stay unless the program rebinds them; trusted modules and constructors the program
    imports are added; any other top-level binding hides a name (it is not data then).
    """
    names = dict(BUILTIN_NAMES)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return names
    for node in tree.body:
        for name, value in _bindings(node):
            if value is None:
                names.pop(name, None)
            else:
                names[name] = value
    return names


def _bindings(node: ast.stmt):
    """(name, data value or None) for each module-level name a statement binds."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            top = alias.name.split(".")[0]
            if alias.asname:
                yield alias.asname, _ModuleRef(alias.name) if alias.name in _MODULES else None
            else:
                yield top, _ModuleRef(top) if top in _MODULES else None
        return
    if isinstance(node, ast.ImportFrom):
        members = _MODULES.get(node.module or "") if node.level == 0 else None
        for alias in node.names:
            if alias.name == "*":
                for key, value in (members or {}).items():
                    yield key, value
                continue
            value = members.get(alias.name) if members else None
            yield alias.asname or alias.name, value
        return
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name, None
        return
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            yield sub.id, None
        elif isinstance(sub, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)) and sub is not node:
            if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                yield sub.name, None
            else:
                for alias in sub.names:
                    yield (alias.asname or alias.name).split(".")[0], None


# ---------------------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, names: Names):
        self.names = names
        self.nodes = MAX_NODES

    def value(self, node: ast.AST) -> Any:
        self.nodes -= 1
        if self.nodes < 0:
            raise NotData("literal too large")
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List):
            return [self.value(e) for e in self._no_star(node.elts)]
        if isinstance(node, ast.Tuple):
            return tuple(self.value(e) for e in self._no_star(node.elts))
        if isinstance(node, ast.Set):
            return self._hashed(set, [self.value(e) for e in self._no_star(node.elts)])
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise NotData("dict display with ** unpacking")
            return self._hashed(
                dict, [(self.value(k), self.value(v)) for k, v in zip(node.keys, node.values, strict=True)]
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand)
            if type(operand) not in (int, float, complex):
                raise NotData("sign on a non-number")
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            return self._arith(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, (ast.Name, ast.Attribute)):
            target = self._resolve(node)
            if hasattr(target, "value"):
                return target.value
            raise NotData(f"name {ast.unparse(node)!r} is not data")
        raise NotData(f"{type(node).__name__} is not a literal")

    @staticmethod
    def _no_star(elts: list) -> list:
        if any(isinstance(e, ast.Starred) for e in elts):
            raise NotData("starred element in a display")
        return elts

    @staticmethod
    def _hashed(kind: Callable, items: list) -> Any:
        try:
            return kind(items)
        except TypeError as exc:
            raise NotData(f"unhashable element: {exc}") from None

    def _arith(self, node: ast.BinOp) -> Any:
        left, right = self.value(node.left), self.value(node.right)
        numeric = (int, float, complex)
        if type(left) not in numeric or type(right) not in numeric:
            raise NotData("arithmetic on non-numbers")
        for operand in (left, right):
            if type(operand) is int and operand.bit_length() > _MAX_ARITH_BITS:
                raise NotData("arithmetic on a huge int")
        try:
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            return left / right
        except (ZeroDivisionError, OverflowError) as exc:
            raise NotData(f"arithmetic fails: {exc}") from None

    def _resolve(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise NotData(f"name {node.id!r} is not data")
            return self.names[node.id]
        if isinstance(node, ast.Attribute):
            base = self._resolve(node.value)
            if isinstance(base, _ModuleRef):
                return base.attribute(node.attr)
        raise NotData(f"{ast.unparse(node)!r} is not a data constructor")

    def _call(self, node: ast.Call) -> Any:
        build = self._resolve(node.func)
        if not callable(build) or hasattr(build, "value"):
            raise NotData(f"{ast.unparse(node.func)!r} is not a data constructor")
        self._no_star(node.args)
        if any(k.arg is None for k in node.keywords):
            raise NotData("** in a constructor call")
        displays = [isinstance(a, (ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Constant)) for a in node.args]
        args = [self.value(a) for a in node.args]
        kwargs = {k.arg: self.value(k.value) for k in node.keywords}
        try:
            return build(args, kwargs, displays)
        except NotData:
            raise
        except (TypeError, ValueError, ArithmeticError, decimal.InvalidOperation) as exc:
            raise NotData(f"constructor fails: {type(exc).__name__}: {exc}") from None


def _parse_tree(text: str, mode: str) -> ast.AST:
    if not isinstance(text, str):
        raise NotData("not a string")
    if len(text) > MAX_TEXT_CHARS:
        raise NotData(f"longer than {MAX_TEXT_CHARS} characters")
    try:
        return ast.parse(text, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise NotData(f"does not parse: {type(exc).__name__}: {exc}") from None


def parse_literal(text: str, names: Names = BUILTIN_NAMES) -> Any:
    """The value of `text` read as data (surrounding whitespace ignored); NotData otherwise."""
    tree = _parse_tree(text.strip() if isinstance(text, str) else text, "eval")
    try:
        return _Parser(names).value(tree.body)
    except RecursionError:
        raise NotData("nested too deeply") from None


def parse_call_arguments(
    text: str, names: Names = BUILTIN_NAMES, callee: str = "f", semantics: str = "official"
) -> tuple[tuple, dict]:
    """(args, kwargs) of `callee(<text>)` when every argument is data; NotData otherwise.

    The text is pasted as `callee(` + text + `)` (official: as the official templates paste an
    input, so a trailing comment swallows the parenthesis) or between newlines (strict)."""
    if not isinstance(text, str):
        raise NotData("not a string")
    source = f"{callee}({text})" if semantics == "official" else f"{callee}(\n{text}\n)"
    tree = _parse_tree(source, "eval")
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == callee):
        raise NotData(f"not an argument list of one call to {callee}")
    parser = _Parser(names)
    try:
        args = []
        for arg in call.args:
            if isinstance(arg, ast.Starred):
                value = parser.value(arg.value)
                if type(value) not in (list, tuple):
                    raise NotData("*-argument that is not a list or tuple display")
                args.extend(value)
            else:
                args.append(parser.value(arg))
        kwargs: dict[str, Any] = {}
        for kw in call.keywords:
            if kw.arg is None:
                value = parser.value(kw.value)
                if type(value) is not dict or not all(type(k) is str for k in value):
                    raise NotData("**-argument that is not a dict display with string keys")
                overlap = set(value) & set(kwargs)
                if overlap:
                    raise NotData(f"repeated keyword {sorted(overlap)[0]!r}")
                kwargs.update(value)
            else:
                if kw.arg in kwargs:
                    raise NotData(f"repeated keyword {kw.arg!r}")
                kwargs[kw.arg] = parser.value(kw.value)
        return tuple(args), kwargs
    except RecursionError:
        raise NotData("nested too deeply") from None


# ------------------------------------------------------------------------------------ comparison
def same_value(gold: Any, candidate: Any) -> bool:
    """Python's `gold == candidate` for values built only from trusted types; False if it raises."""
    try:
        return bool(gold == candidate)
    except Exception:  # noqa: BLE001 - RecursionError, decimal signals, ...: not equal
        return False


def literal_equal(a_text: str, b_text: str, names: Names = BUILTIN_NAMES) -> bool | None:
    """Whether two texts denote equal values; None when either is not data."""
    try:
        return same_value(parse_literal(a_text, names), parse_literal(b_text, names))
    except NotData:
        return None


__all__ = [
    "BUILTIN_NAMES",
    "DEDUCTION_NAMES",
    "NotData",
    "literal_equal",
    "names_of_program",
    "parse_call_arguments",
    "parse_literal",
    "same_value",
]
