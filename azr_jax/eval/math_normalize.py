"""Deciding whether a math answer matches the reference.

Competition answers come in many spellings of one value: `\\frac{1}{2}`, `\\dfrac12`, `1/2`, `0.5`;
`30^\\circ` and `30`; `x = 3` and `3`; `1,000` and `1000`; `\\text{(C)}` and `C`. Two steps decide:

1. `normalize_answer` rewrites a string into a canonical spelling (delimiters, spacing, `\\left`/
   `\\right`, text wrappers, trailing units, degree and percent signs, thousands separators,
   trailing `.0`, a leading `x =`). Equal canonical strings are equal answers.
2. `answers_equal` then tries values: a small exact parser for numeric LaTeX (integers, decimals,
   scientific notation, `\\frac`, `\\sqrt`, `\\pi`, powers, products) compares numbers exactly when
   both sides are exact rationals and with a relative tolerance when one side is a decimal
   approximation or irrational; tuples, intervals and sets compare element by element; and, when
   sympy is installed, symbolic expressions are compared by evaluating both at a few points.

No model text is ever passed to `eval`: the numeric parser is a hand-written recursive descent
whose exact arithmetic refuses results beyond `MAX_EXACT_BITS`, and the sympy fallback only sees
strings restricted to digits, operators, parentheses, single-letter variables and a short list of
function names; it runs in a helper process with a time and memory bound (`bounded.py`), so an
answer like `9^{9^{9^{9}}}` is "not equal" within `SYMBOLIC_TIMEOUT_S`.

Two modes (`answers_equal(..., mode=)`): "strict" (the default, our rules above) and "official",
which applies the Qwen2.5-Math grader's equivalences where they differ from ours: every number
compared with a relative tolerance of 1e-4 (so 100000 equals 100001), a number also equal to the
reference x100 or /100 (percent scaling, with or without a % sign), bracket types ignored (the
interval (1, 2) equals [1, 2]) and lists always compared in order. See azr_jax/eval/README.md.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from fractions import Fraction
from typing import Any, NamedTuple

from azr_jax.eval.extract import last_boxed

# Relative tolerance for values written approximately (decimals vs exact forms); the value used by
# the Qwen2.5-Math / simpleRL evaluation that AZR's math numbers come from.
REL_TOL = 1e-4
# Absolute tolerance so that tiny values near zero can match 0.
ABS_TOL = 1e-9
# Exponents above this are not expanded by the exact evaluator (no 2^(10^10) in memory).
MAX_EXPONENT = 4096
# Longest element list compared without regard to order (permutation search is factorial).
MAX_UNORDERED_ITEMS = 8
# Answers longer than this are compared as plain text only: real final answers are short, and the
# normaliser's brace handling is quadratic in the worst case.
MAX_ANSWER_CHARS = 1000
# Longest normalised string handed to the sympy fallback.
MAX_SYMBOLIC_CHARS = 200
# Exact arithmetic past this many bits is refused (the value is then compared as a float or not at
# all): bounds the work of the numeric parser whatever the answer.
MAX_EXACT_BITS = 20000
# Wall-clock and memory bound of one symbolic (sympy) comparison, run in a helper process.
SYMBOLIC_TIMEOUT_S = 5.0
SYMBOLIC_MEMORY_MB = 1024
MODES = ("strict", "official")
# Points at which two symbolic expressions are evaluated (rationals unlikely to be special).
SAMPLE_POINTS = (Fraction(7, 10), Fraction(13, 10), Fraction(29, 10))

_SPACING_COMMANDS = ("\\!", "\\,", "\\;", "\\:", "\\quad", "\\qquad", "\\displaystyle", "\\textstyle")
_TEXT_WRAPPERS = (
    "text",
    "textbf",
    "textit",
    "textrm",
    "mathrm",
    "mathbf",
    "mbox",
    "operatorname",
    "boldsymbol",
    "mathit",
)
_RELATION_SYNONYMS = (
    ("\\leqslant", "\\le"),
    ("\\geqslant", "\\ge"),
    ("\\leq", "\\le"),
    ("\\geq", "\\ge"),
    ("\\neq", "\\ne"),
    ("\\varnothing", "\\emptyset"),
)
_TRAILING_TEXT = re.compile(r"\\(?:text|mbox|mathrm)\{[^{}]*\}(?:\^\{?\d+\}?)?$")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_TRAILING_WORD_UNITS = re.compile(rf"^({_NUMBER})\s+[a-zA-Z][a-zA-Z .]*(?:\^\{{?\d+\}}?)?$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_ASSIGNMENT_LHS = re.compile(r"^(?:[a-zA-Z](?:_\{?[a-zA-Z0-9]+\}?)?|\\[a-zA-Z]+)$")


# ----------------------------------------------------------------------------- normalisation


def _matching_brace(text: str, open_index: int) -> int:
    """Index of the brace closing the one at `open_index`, or -1."""
    depth = 0
    for pos in range(open_index, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return pos
    return -1


def _unwrap_command(text: str, command: str) -> str:
    """Replace every `\\command{X}` with `X` (balanced braces)."""
    token = "\\" + command + "{"
    while True:
        start = text.find(token)
        if start < 0:
            return text
        brace = start + len(token) - 1
        end = _matching_brace(text, brace)
        if end < 0:
            return text
        text = text[:start] + text[brace + 1 : end] + text[end + 1 :]


def _strip_outer_delimiters(text: str) -> str:
    text = text.replace("\\$", "").strip()
    if text.startswith("\\boxed") or text.startswith("\\fbox"):
        inner = last_boxed(text)
        if inner is not None:
            text = inner
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : len(text) - len(right)].strip()
    return text.replace("$", "")


def _fix_fracs_and_roots(text: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{x}` / `\\frac{x}2` likewise; `\\sqrt2` -> `\\sqrt{2}`."""
    text = re.sub(r"\\frac\s*([a-zA-Z0-9])\s*([a-zA-Z0-9])", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\frac\s*([a-zA-Z0-9])\s*\{", r"\\frac{\1}{", text)
    text = re.sub(r"\\frac\s*(\{[^{}]*\})\s*([a-zA-Z0-9])", r"\\frac\1{\2}", text)
    return re.sub(r"\\sqrt\s*([a-zA-Z0-9])", r"\\sqrt{\1}", text)


def _and_lists(text: str) -> str:
    """`1 and 2`, `1, 2, and 3` -> comma lists (only in answers that hold a number)."""
    if not re.search(r"\d", text):
        return text
    return re.sub(r"\s*,?\s+and\s+", ",", text)


def _mixed_numbers(text: str) -> str:
    """`3\\frac{1}{2}` is three and a half, not a product: `(3+\\frac{1}{2})` (a leading minus
    then negates the whole)."""
    return re.sub(r"(?<![\d.}^_a-zA-Z\\])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}", r"(\1+\\frac{\2}{\3})", text)


def _strip_units_and_text(text: str) -> str:
    # A trailing \text{...}/\mbox{...}/\mathrm{...} after a value is a unit: drop it.
    stripped = _TRAILING_TEXT.sub("", text).strip()
    if stripped and stripped != text:
        text = stripped
    for wrapper in _TEXT_WRAPPERS:
        text = _unwrap_command(text, wrapper)
    match = _TRAILING_WORD_UNITS.match(text.strip())
    return match.group(1) if match else text


def _strip_assignment(text: str) -> str:
    """`x = 3` -> `3`, `k \\in (1, 2)` -> `(1, 2)`, also inside comma lists (`x=1, y=2`)."""
    parts = _split_top_level(text)
    stripped = []
    for part in parts:
        for relation in ("=", "\\in"):
            if part.count(relation) == 1:
                lhs, rhs = part.split(relation)
                if _ASSIGNMENT_LHS.match(lhs.strip()) and rhs.strip():
                    part = rhs
                    break
        stripped.append(part.strip())
    return ",".join(stripped) if len(stripped) > 1 else stripped[0]


def _protect_command_spacing(text: str) -> str:
    """Keep `\\pi r` from becoming `\\pir` when whitespace is removed."""
    return re.sub(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])", r"\1{}", text)


def _tidy_numbers(text: str) -> str:
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    text = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", text)  # .5 -> 0.5
    # Patterns start at the decimal point (not at the digits before it) to stay linear in length.
    text = re.sub(r"(\.\d*?)0+(?!\d)", r"\1", text)  # 2.50 -> 2.5, 3.000 -> 3.
    return re.sub(r"(?<=\d)\.(?!\d)", "", text)  # 3. -> 3


def _percent_marked(text: str) -> bool:
    return "%" in text


def normalize_answer(answer: str) -> str:
    """Canonical spelling of an answer (see module docstring). Idempotent."""
    text = str(answer).replace("\n", " ").strip()
    text = _strip_outer_delimiters(text)
    for command in _SPACING_COMMANDS:
        text = text.replace(command, "")
    text = re.sub(r"(?<!\\)\\ ", " ", text).replace("~", " ").replace("{,}", "")
    text = text.replace("\\left.", "").replace("\\right.", "")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    for old, new in _RELATION_SYNONYMS:
        text = text.replace(old, new)
    text = text.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "").replace("°", "")
    text = text.replace("\\degree", "")
    text = text.replace("\\%", "").replace("%", "")
    text = _strip_units_and_text(text)
    text = text.replace("\\{", "{").replace("\\}", "}")
    text = text.replace("infinity", "\\infty")
    if "\\infty" not in text:
        text = re.sub(r"\binf\b", "\\\\infty", text)
    text = _fix_fracs_and_roots(text)
    text = _and_lists(text)
    text = _mixed_numbers(text)
    text = _protect_command_spacing(text)
    text = re.sub(r"\s+", "", text)
    text = text.rstrip(".")
    if text:
        text = _strip_assignment(text)
    text = _tidy_numbers(text)
    while len(text) >= 2 and text[0] == "{" and _matching_brace(text, 0) == len(text) - 1:
        text = text[1:-1]
    if re.fullmatch(r"\(([A-Za-z0-9]+)\)", text):  # (C) -> C, (5) -> 5
        text = text[1:-1]
    return text


# ----------------------------------------------------------------------------- exact numeric values


class _Value(NamedTuple):
    number: float
    exact: Fraction | None  # set when the value is a rational known exactly
    decimal: bool  # a decimal point was written (the value may be an approximation)


class _NotNumeric(Exception):
    """The string is not a numeric expression this parser understands."""


_TOKEN = re.compile(r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|\\[a-zA-Z]+|[-+*/^(){}\[\]]")


class _NumericParser:
    """Recursive-descent evaluation of numeric LaTeX; anything else raises `_NotNumeric`."""

    def __init__(self, text: str) -> None:
        self.tokens = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if not match:
                raise _NotNumeric(text[pos:])
            self.tokens.append(match.group(0))
            pos = match.end()
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _NotNumeric(f"expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def parse(self) -> _Value:
        value = self.expression()
        if self.peek() is not None:
            raise _NotNumeric(f"unexpected {self.peek()!r}")
        return value

    def expression(self) -> _Value:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            value = _combine(value, right, op)
        return value

    def term(self) -> _Value:
        value = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "/", "\\cdot", "\\times", "\\div"):
                self.take()
                op = "/" if token in ("/", "\\div") else "*"
                value = _combine(value, self.unary(), op)
            elif token is not None and (
                token[0].isdigit() or token in ("(", "{", "\\frac", "\\sqrt", "\\pi")
            ):
                value = _combine(value, self.power(), "*")  # implicit product: 2\sqrt{3}, 3\pi
            else:
                return value

    def unary(self) -> _Value:
        if self.peek() == "-":
            self.take()
            inner = self.unary()
            return _Value(-inner.number, -inner.exact if inner.exact is not None else None, inner.decimal)
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self) -> _Value:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            exponent = self.group() if self.peek() in ("{", "(") else self.number_token()
            return _power(base, exponent)
        return base

    def group(self) -> _Value:
        opener = self.take()
        closers = {"{": "}", "(": ")", "[": "]"}
        if opener not in closers:
            raise _NotNumeric(f"expected a bracket, got {opener!r}")
        closer = closers[opener]
        value = self.expression()
        self.take(closer)
        return value

    def number_token(self) -> _Value:
        token = self.take()
        if not (token[0].isdigit() or token[0] == "."):
            raise _NotNumeric(token)
        exact = Fraction(token)
        return _Value(float(exact), exact, "." in token or "e" in token.lower())

    def atom(self) -> _Value:
        token = self.peek()
        if token is None:
            raise _NotNumeric("unexpected end")
        if token[0].isdigit() or token[0] == ".":
            return self.number_token()
        if token in ("(", "{"):
            return self.group()
        if token == "\\frac":
            self.take()
            numerator = self.group()
            denominator = self.group()
            return _combine(numerator, denominator, "/")
        if token == "\\sqrt":
            self.take()
            degree = _Value(2.0, Fraction(2), False)
            if self.peek() == "[":
                degree = self.group()
            radicand = self.group()
            return _root(radicand, degree)
        if token == "\\pi":
            self.take()
            return _Value(math.pi, None, False)
        raise _NotNumeric(token)


def _combine(left: _Value, right: _Value, op: str) -> _Value:
    decimal = left.decimal or right.decimal
    exact = None
    for side in (left, right):
        if side.exact is not None and _bits(side.exact) > MAX_EXACT_BITS:
            raise _NotNumeric("exact value too large")
    try:
        if op == "+":
            number = left.number + right.number
            if left.exact is not None and right.exact is not None:
                exact = left.exact + right.exact
        elif op == "-":
            number = left.number - right.number
            if left.exact is not None and right.exact is not None:
                exact = left.exact - right.exact
        elif op == "*":
            number = left.number * right.number
            if left.exact is not None and right.exact is not None:
                exact = left.exact * right.exact
        else:
            if right.number == 0:
                raise _NotNumeric("division by zero")
            number = left.number / right.number
            if left.exact is not None and right.exact is not None:
                exact = left.exact / right.exact
    except OverflowError as err:
        raise _NotNumeric("overflow") from err
    return _Value(float(exact) if exact is not None else number, exact, decimal)


def _bits(value: Fraction) -> int:
    return max(value.numerator.bit_length(), value.denominator.bit_length())


def _power(base: _Value, exponent: _Value) -> _Value:
    if abs(exponent.number) > MAX_EXPONENT:
        raise _NotNumeric("exponent too large")
    exact = None
    if (
        base.exact is not None
        and exponent.exact is not None
        and exponent.exact.denominator == 1
        and not (base.exact == 0 and exponent.exact < 0)
        and _bits(base.exact) * abs(int(exponent.exact)) <= MAX_EXACT_BITS
    ):
        exact = base.exact ** int(exponent.exact)
    try:
        number = float(exact) if exact is not None else base.number**exponent.number
    except (OverflowError, ZeroDivisionError) as err:
        raise _NotNumeric("power out of range") from err
    if isinstance(number, complex):
        raise _NotNumeric("complex power")
    return _Value(number, exact, base.decimal or exponent.decimal)


def _root(radicand: _Value, degree: _Value) -> _Value:
    if degree.number == 0 or radicand.number < 0:
        raise _NotNumeric("root out of range")
    number = radicand.number ** (1.0 / degree.number)
    exact = None
    if radicand.exact is not None and degree.exact is not None and degree.exact.denominator == 1:
        rounded = Fraction(round(number * 10**6), 10**6)
        for candidate in (Fraction(round(number)), rounded):
            if candidate >= 0 and candidate ** int(degree.exact) == radicand.exact:
                exact = candidate
                break
    return _Value(number, exact, radicand.decimal)


def numeric_value(answer: str) -> tuple[float, Fraction | None, bool] | None:
    """(value, exact rational or None, written-with-decimals) of a numeric answer; None if the
    normalised answer is not a numeric expression."""
    text = normalize_answer(answer)
    if not text:
        return None
    try:
        value = _NumericParser(text).parse()
    except (_NotNumeric, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
    if math.isnan(value.number) or math.isinf(value.number):
        return None
    return value.number, value.exact, value.decimal


def _numbers_equal(a: tuple[float, Fraction | None, bool], b: tuple[float, Fraction | None, bool]) -> bool:
    (x, x_exact, x_decimal), (y, y_exact, y_decimal) = a, b
    if x_exact is not None and y_exact is not None and x_exact == y_exact:
        return True
    exact_on_both_sides = x_exact is not None and y_exact is not None
    if exact_on_both_sides and not (x_decimal or y_decimal):
        return False  # 1/3 vs 1/4, 100000 vs 100001: no tolerance for exact values
    return math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL)


# ----------------------------------------------------------------------------- structured answers


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside (), [], {}."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _brackets_and_items(text: str) -> tuple[str, str, list[str]]:
    """('(', ']', items) for `(1,2]`; ('', '', items) for a bare comma list."""
    if len(text) >= 2 and text[0] in "([{" and text[-1] in ")]}":
        depth = 0
        for pos, char in enumerate(text):
            depth += char in "([{"
            depth -= char in ")]}"
            if depth == 0 and pos < len(text) - 1:
                break  # `(1)+(2)`: the brackets do not enclose everything
        else:
            return text[0], text[-1], _split_top_level(text[1:-1])
    return "", "", _split_top_level(text)


def _sequences_equal(pred: str, gold: str, mode: str = "strict") -> bool | None:
    """Compare tuples / intervals / sets / lists; None when neither side is a sequence."""
    p_open, p_close, p_items = _brackets_and_items(pred)
    g_open, g_close, g_items = _brackets_and_items(gold)
    if len(p_items) == 1 and len(g_items) == 1:
        return None
    if len(p_items) != len(g_items):
        return False
    if mode == "official":  # Qwen: bracket types ignored, order kept
        return all(answers_equal(p, g, mode) for p, g in zip(p_items, g_items))
    brackets_p, brackets_g = p_open + p_close, g_open + g_close
    if brackets_p and brackets_g and brackets_p != brackets_g:
        return False  # (1,2) vs [1,2]: different intervals
    if "[" in brackets_p + brackets_g and not (brackets_p and brackets_g):
        return False  # a closed interval is not a bare list
    unordered = brackets_g in ("", "{}") and brackets_p in ("", "{}")
    if not unordered:
        return all(answers_equal(p, g) for p, g in zip(p_items, g_items))
    if len(p_items) > MAX_UNORDERED_ITEMS:
        return sorted(map(normalize_answer, p_items)) == sorted(map(normalize_answer, g_items))
    return any(
        all(answers_equal(p, g) for p, g in zip(perm, g_items)) for perm in itertools.permutations(p_items)
    )


# ----------------------------------------------------------------------------- matrices and vectors

_MATRIX_ENV = re.compile(
    r"\\begin\{(pmatrix|bmatrix|Bmatrix|matrix|smallmatrix|array)\}(.*?)\\end\{\1\}", re.DOTALL
)


def matrix_entries(answer: str) -> list[list[str]] | None:
    """Rows of entries of a matrix answer (`pmatrix`, `bmatrix`, `matrix`, `array`, any spacing,
    inside `\\left( \\right)` or not); None when the answer is not one matrix."""
    text = _strip_outer_delimiters(str(answer).replace("\n", " ").strip())
    text = re.sub(r"\\(?:left|right)\s*[\[\]()]|\\(?:left|right)\.", "", text).strip()
    match = _MATRIX_ENV.fullmatch(text.strip())
    if match is None:
        return None
    body = match.group(2)
    if match.group(1) == "array":
        body = re.sub(r"^\s*\{[^{}]*\}", "", body)  # the column spec {cc}
    rows = [row for row in re.split(r"\\\\(?:\[[^\]]*\])?", body) if row.strip()]
    entries = [[cell.strip() for cell in row.split("&")] for row in rows]
    return entries if entries and all(entries) else None


def _as_vector(entries: list[list[str]]) -> list[str] | None:
    """The entries of a one-row or one-column matrix."""
    if len(entries) == 1:
        return entries[0]
    if all(len(row) == 1 for row in entries):
        return [row[0] for row in entries]
    return None


def _matrices_equal(prediction: str, reference: str, mode: str) -> bool | None:
    """Entry-by-entry comparison when either side is a matrix (a vector also matches a tuple of
    the same entries); None when neither is."""
    m_pred, m_gold = matrix_entries(prediction), matrix_entries(reference)
    if m_pred is None and m_gold is None:
        return None
    if m_pred is not None and m_gold is not None:
        if [len(r) for r in m_pred] == [len(r) for r in m_gold]:
            return all(answers_equal(p, g, mode) for rp, rg in zip(m_pred, m_gold) for p, g in zip(rp, rg))
        v_pred, v_gold = _as_vector(m_pred), _as_vector(m_gold)
        if v_pred is None or v_gold is None or len(v_pred) != len(v_gold):
            return False
        return all(answers_equal(p, g, mode) for p, g in zip(v_pred, v_gold))
    matrix, other = (m_pred, reference) if m_pred is not None else (m_gold, prediction)
    vector = _as_vector(matrix)
    _, _, items = _brackets_and_items(normalize_answer(other))
    if vector is None or len(items) != len(vector):
        return False
    pairs = zip(vector, items) if m_pred is not None else zip(items, vector)
    return all(answers_equal(p, g, mode) for p, g in pairs)


# ----------------------------------------------------------------------------- optional sympy

_FUNCTIONS = {"sqrt", "sin", "cos", "tan", "log", "exp", "pi", "oo", "asin", "acos", "atan"}
_COMMAND_TO_NAME = {
    "\\pi": "pi",
    "\\infty": "oo",
    "\\sin": "sin",
    "\\cos": "cos",
    "\\tan": "tan",
    "\\ln": "log",
    "\\log": "log",
    "\\exp": "exp",
    "\\arcsin": "asin",
    "\\arccos": "acos",
    "\\arctan": "atan",
    "\\cdot": "*",
    "\\times": "*",
    "\\div": "/",
}


def _latex_to_expression(text: str) -> str | None:
    """Rewrite normalised LaTeX into an arithmetic expression string, or None if it has anything
    outside a small safe vocabulary."""
    for command in ("frac", "sqrt"):
        while "\\" + command in text:
            start = text.find("\\" + command)
            pos = start + len(command) + 1
            degree = None
            if command == "sqrt" and text[pos : pos + 1] == "[":
                close = text.find("]", pos)
                if close < 0:
                    return None
                degree, pos = text[pos + 1 : close], close + 1
            args = []
            for _ in range(2 if command == "frac" else 1):
                if text[pos : pos + 1] != "{":
                    return None
                end = _matching_brace(text, pos)
                if end < 0:
                    return None
                args.append(text[pos + 1 : end])
                pos = end + 1
            if command == "frac":
                replacement = f"(({args[0]})/({args[1]}))"
            elif degree is not None:
                replacement = f"(({args[0]})**(1/({degree})))"
            else:
                replacement = f"sqrt({args[0]})"
            text = text[:start] + replacement + text[pos:]
    for command, name in sorted(_COMMAND_TO_NAME.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(command, f" {name} " if name.isalpha() else name)
    text = text.replace("{}", " ").replace("{", "(").replace("}", ")").replace("^", "**")
    if "\\" in text or not re.fullmatch(r"[0-9a-zA-Z+\-*/(). ]*", text):
        return None
    words = []
    for word in re.findall(r"[a-zA-Z]+|[^a-zA-Z]+", text):
        if word.isalpha() and word not in _FUNCTIONS:
            word = "*".join(word)  # xy -> x*y: only single letters reach sympy
        words.append(word)
    return "".join(words)


def _symbolic_equal(pred: str, gold: str) -> bool | None:
    """Evaluate both sides at a few points with sympy, in the bounded helper process; None when
    undecided (sympy absent, unparsable, or past the time/memory bound)."""
    if max(len(pred), len(gold)) > MAX_SYMBOLIC_CHARS:
        return None
    sides = [_latex_to_expression(pred), _latex_to_expression(gold)]
    if None in sides:
        return None
    status, value = _symbolic_helper().call(sides[0], sides[1])
    return value if status == "ok" else None


_HELPER = None


def _symbolic_helper():
    global _HELPER
    if _HELPER is None:
        from azr_jax.eval.bounded import BoundedFunction

        _HELPER = BoundedFunction(
            __name__, "symbolic_expressions_equal", timeout_s=SYMBOLIC_TIMEOUT_S, memory_mb=SYMBOLIC_MEMORY_MB
        )
    return _HELPER


def symbolic_expressions_equal(pred_expr: str, gold_expr: str) -> bool | None:
    """Runs in the helper process only (no bound of its own): both expressions at sample points."""
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            convert_xor,
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sympy deprecation chatter on odd inputs
        try:
            return _compare_at_points(
                sympy,
                parse_expr,
                [pred_expr, gold_expr],
                standard_transformations + (implicit_multiplication_application, convert_xor),
            )
        except Exception:  # noqa: BLE001 - model text can break sympy in many ways: undecided
            return None


def _compare_at_points(sympy: Any, parse_expr: Any, sides: list[str], transformations: Any) -> bool | None:
    """Both parsed sides evaluated at `SAMPLE_POINTS` (every free symbol gets a value)."""
    letters = sorted(set(re.findall(r"(?<![a-zA-Z])[a-zA-Z](?![a-zA-Z])", " ".join(sides))))
    symbols = {name: sympy.Symbol(name) for name in letters}
    exprs = [
        parse_expr(side, local_dict=dict(symbols), transformations=transformations, evaluate=False)
        for side in sides
    ]
    if not all(isinstance(e, sympy.Expr) for e in exprs):
        return None
    free = sorted(set().union(*(e.free_symbols for e in exprs)), key=str)
    checked = 0
    for shift in range(len(SAMPLE_POINTS)):
        point = {
            sym: sympy.Rational(SAMPLE_POINTS[(i + shift) % len(SAMPLE_POINTS)]) for i, sym in enumerate(free)
        }
        try:
            values = [complex(e.evalf(subs=point)) for e in exprs]
        except Exception:  # noqa: BLE001 - undefined at this point (log of a negative, 1/0, ...)
            continue
        if any(math.isnan(v.real) or math.isinf(v.real) for v in values):
            continue
        checked += 1
        if abs(values[0] - values[1]) > REL_TOL * max(1.0, abs(values[1])):
            return False
        if not free:
            break
    return True if checked else None


# ----------------------------------------------------------------------------- public entry point

_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def _official_numbers_equal(pred: str, gold: str, pred_value: tuple, gold_value: tuple) -> bool:
    """Qwen2.5-Math: relative tolerance 1e-4 for every number; plain numbers also match the
    reference scaled by 100 or 1/100."""
    x, y = pred_value[0], gold_value[0]
    targets = [y]
    if _PLAIN_NUMBER.fullmatch(pred) and _PLAIN_NUMBER.fullmatch(gold):
        targets = [y / 100, y, y * 100]
    return any(math.isclose(t, x, rel_tol=REL_TOL) for t in targets)


def answers_equal(prediction: str, reference: str, mode: str = "strict") -> bool:
    """True when `prediction` denotes the same answer as `reference` (see module docstring)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if max(len(str(prediction)), len(str(reference))) > MAX_ANSWER_CHARS:
        return str(prediction).strip() == str(reference).strip() != ""
    matrices = _matrices_equal(prediction, reference, mode)
    if matrices is not None:
        return matrices
    pred, gold = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not gold:
        return False
    if pred == gold:
        return True
    if re.fullmatch(r"[A-Za-z ]+", pred) and re.fullmatch(r"[A-Za-z ]+", gold):
        return pred.lower() == gold.lower()
    pred_value, gold_value = numeric_value(pred), numeric_value(gold)
    if pred_value is not None and gold_value is not None:
        if mode == "official":
            return _official_numbers_equal(pred, gold, pred_value, gold_value)
        if _numbers_equal(pred_value, gold_value):
            return True
        if _percent_marked(str(prediction)) != _percent_marked(str(reference)):
            scale = 100.0 if _percent_marked(str(prediction)) else 0.01
            return math.isclose(pred_value[0], gold_value[0] * scale, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        return False
    sequences = _sequences_equal(pred, gold, mode)
    if sequences is not None:
        return sequences
    if "\\cup" in pred or "\\cup" in gold:
        p_parts, g_parts = pred.split("\\cup"), gold.split("\\cup")
        return len(p_parts) == len(g_parts) and all(
            answers_equal(p, g, mode) for p, g in zip(p_parts, g_parts)
        )
    return bool(_symbolic_equal(pred, gold))
