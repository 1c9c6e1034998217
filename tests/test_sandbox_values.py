"""Values as data: the restricted literal parser, the child -> worker codec, the comparison, and the
worker's reader of child messages. References: Python's own repr/eval and `==`."""

import collections
import decimal
import enum
import fractions
import json
import random
from collections import Counter, OrderedDict, deque, namedtuple

import pytest

from azr_jax.sandbox import codec, judge
from azr_jax.sandbox.values import (
    DEDUCTION_NAMES,
    NotData,
    literal_equal,
    names_of_program,
    parse_call_arguments,
    parse_literal,
    same_value,
)

SAMPLES = [
    0,
    -7,
    10**30,
    -(10**400),
    1.5,
    -0.0,
    float("inf"),
    -float("inf"),
    1e-300,
    2j,
    complex(1, -2.5),
    "",
    "a'b\"c",
    "\x00\udc80é",
    b"\x00\xff",
    bytearray(b"xy"),
    None,
    True,
    False,
    ...,
    [],
    [1, [2, [3]]],
    (),
    (1,),
    (1, "a", (2.5, None)),
    {},
    {"a": 1, (1, 2): [3]},
    {1, 2, 3},
    frozenset({"x"}),
    set(),
    frozenset(),
    range(0, 10, 3),
    Counter("abracadabra"),
    Counter(),
    deque([1, 2]),
    deque([1], maxlen=3),
    OrderedDict([("b", 1), ("a", 2)]),
    fractions.Fraction(-3, 4),
    decimal.Decimal("1.10"),
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_repr_of_data_parses_back_to_an_equal_value(value):
    names = names_of_program(
        "from collections import Counter, OrderedDict, deque\nfrom fractions import Fraction\nfrom decimal import Decimal\nfrom math import inf"
    )
    parsed = parse_literal(repr(value), names)
    assert same_value(value, parsed) and type(parsed) is type(value)
    assert same_value(
        parsed,
        eval(
            repr(value),
            {
                "Counter": Counter,
                "OrderedDict": OrderedDict,
                "deque": deque,
                "Fraction": fractions.Fraction,
                "Decimal": decimal.Decimal,
                "inf": float("inf"),
            },
        ),
    )  # noqa: S307 - our own reprs


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_codec_round_trip_keeps_type_and_equality(value):
    tree = json.loads(codec.dumps(codec.encode(value)))
    back = codec.decode(tree)
    assert type(back) is type(value) and same_value(value, back)
    if isinstance(value, (OrderedDict, list, tuple, str)):
        assert repr(back) == repr(value)


@pytest.mark.parametrize(
    "text",
    [
        "f(3)",
        "x",
        "__import__('os')",
        "open('/etc/passwd')",
        "[i for i in range(3)]",
        "lambda: 1",
        "{**{'a': 1}}",
        "[*range(3)]",
        "f'{1}'",
        "1 if True else 2",
        "(1).__class__",
        "print(1)",
        "list(range(10**12))",
        "set(range(10**9))",
        "9**9**9**9",
        "sorted([2, 1])",
        "dict_keys([1])",
        "Counter({'a': 1})",
        "np.int64(5)",
        "[1, 2, ...",
        "",
    ],
)
def test_code_is_never_data(text):
    with pytest.raises(NotData):
        parse_literal(text)


def test_names_resolve_only_as_the_program_binds_them():
    assert parse_literal("Counter({'a': 2})", names_of_program("from collections import Counter")) == Counter(
        a=2
    )
    assert parse_literal("C({'a': 2})", names_of_program("from collections import Counter as C")) == Counter(
        a=2
    )
    assert parse_literal("collections.deque([1])", names_of_program("import collections")) == deque([1])
    with pytest.raises(NotData):  # `import collections` does not bind Counter: officially a NameError
        parse_literal("Counter({'a': 2})", names_of_program("import collections"))
    with pytest.raises(NotData):  # the program rebinds a builtin: not data any more
        parse_literal("set()", names_of_program("def set():\n    return 1"))
    with pytest.raises(NotData):
        parse_literal("Counter()", names_of_program("from collections import Counter\nCounter = dict"))
    assert parse_literal("[inf, 1]", names_of_program("from math import inf")) == [float("inf"), 1]
    assert (
        parse_literal("np.int64(5)", DEDUCTION_NAMES) == 5
        and parse_literal("np.True_", DEDUCTION_NAMES) is True
    )
    assert parse_literal("1/2") == 0.5 and parse_literal("-3/4") == -0.75  # sympy Rational reprs
    assert parse_literal("{Ellipsis}") == {...}


def test_call_arguments_as_data():
    assert parse_call_arguments("1, 'a', k=[2]") == ((1, "a"), {"k": [2]})
    assert parse_call_arguments("*[1, 2], **{'x': 3}") == ((1, 2), {"x": 3})
    assert parse_call_arguments("1  # note", semantics="strict") == ((1,), {})
    for text in ("1  # note", "1) if False else (2", "(f := lambda *a: 1)", "x", "1, k=1, k=2"):
        with pytest.raises(NotData):
            parse_call_arguments(text)


def test_literal_equal_for_evaluation_scripts():
    assert literal_equal("[1,2]", "[1, 2]") is True
    assert literal_equal("'a'", '"b"') is False
    assert literal_equal("[1]", "__import__('os').system('x')") is None


Point = namedtuple("Point", "x y")


class Color(enum.IntEnum):
    RED = 1


class Liar:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class LyingList(list):
    def __eq__(self, other):
        return True

    __hash__ = None


class SneakyList(list):
    def __iter__(self):  # what an encoder reading through __iter__ would send
        return iter([42])


class Tiny(str):
    pass


@pytest.mark.parametrize(
    "value, expected",
    [
        (Point(1, 2), (1, 2)),  # namedtuple: a tuple with the built-in __eq__
        (Color.RED, 1),  # IntEnum: an int
        (SneakyList([1, 2]), [1, 2]),  # read through list's C methods, not the override
        (Tiny("ab"), "ab"),
        (collections.defaultdict(int, a=1), {"a": 1}),
    ],
)
def test_subclasses_with_builtin_equality_travel_as_their_base_value(value, expected):
    back = codec.decode(codec.encode(value))
    assert back == expected and value == expected  # Python agrees


@pytest.mark.parametrize(
    "value", [Liar(), LyingList([1]), [1, Liar()], {"k": Liar()}, {Liar()}, lambda: 1, object, iter([])]
)
def test_objects_with_their_own_equality_are_opaque_and_equal_nothing(value):
    back = codec.decode(codec.encode(value))
    for gold in ([1], 1, {"k": 1}, set(), None, codec.decode(codec.encode(value))):  # not even its own twin
        assert same_value(gold, back) is False


def test_foreign_numbers_travel_as_the_builtin_number_they_equal():
    np = pytest.importorskip("numpy")
    assert codec.decode(codec.encode([np.int64(6), np.float64(0.5), np.bool_(True)])) == [6, 0.5, True]
    sympy = pytest.importorskip("sympy")
    back = codec.decode(codec.encode([sympy.Float(17), sympy.Integer(3), sympy.Rational(1, 2)]))
    assert back == [17.0, 3, fractions.Fraction(1, 2)]
    assert same_value(parse_literal("17.0000000000000"), back[0])  # the recorded repr of sympy.Float(17)
    assert codec.decode(codec.encode(np.array([1, 2]))).name == "ndarray"  # arrays are opaque


def test_cycles_depth_and_budget():
    a = [1]
    a.append(a)
    assert (
        same_value(parse_literal("[1, [...]]"), codec.decode(codec.encode(a))) is False
    )  # official: [1, [Ellipsis]] != a
    deep = []
    node = deep
    for _ in range(codec.MAX_DEPTH + 10):
        node.append([])
        node = node[0]
    assert codec.contains_opaque(codec.encode(deep))
    with pytest.raises(codec.ValueTooLarge):
        codec.encode(list(range(1000)), max_nodes=100)


def test_decoder_refuses_every_malformed_tree():
    rng = random.Random(0)
    atoms = [
        None,
        True,
        1,
        1.5,
        "s",
        [],
        {},
        {"x": 1},
        {"t": 5},
        {"d": [[1]]},
        {"s": [[1]]},
        {"i": "zz"},
        {"f": "nanx"},
        {"r": [1, 2]},
        {"q": [1, 0]},
        {"m": "1e999999999"},
        {"b": "\u0100"},
        {"?": 0},
    ]
    for _ in range(5000):
        tree = rng.choice(atoms)
        for _ in range(rng.randrange(4)):
            tree = rng.choice(
                [[tree], {"t": [tree]}, {"d": [[tree, tree]]}, {"s": [tree]}, {"C": [[tree, 1]]}, {"x": tree}]
            )
        try:
            codec.decode(tree)
        except codec.DecodeError:
            pass


def test_same_value_is_python_equality_on_data():
    assert same_value(1, 1.0) and not same_value([1, 2], (1, 2)) and same_value({3, 1}, {1, 3})
    assert not same_value(float("nan"), float("nan"))
    assert same_value(Counter(a=1), {"a": 1}) and not same_value(deque([1]), [1])
    assert not same_value(decimal.Decimal("sNaN"), 1)  # raising comparisons are "not equal"


def _frames(rng: random.Random, count: int):
    good = {"status": "ok", "value": "1", "stdout": "", "token": "t"}
    yield b""
    yield b"[" * 100_000
    yield b"{" * 50_000
    yield json.dumps({"status": "ok", "pair_verdicts": 5}).encode()
    yield json.dumps({"status": 5}).encode()
    yield json.dumps([1, 2]).encode()
    yield b"\xff\xfe" * 100
    yield json.dumps(good).encode() * 2
    yield json.dumps(dict(good, token="other")).encode()
    for _ in range(count):
        kind = rng.randrange(6)
        if kind == 0:
            yield rng.randbytes(rng.randrange(1, 200))
        elif kind == 1:
            text = json.dumps(dict(good, value=rng.choice([None, 1, [], "x" * rng.randrange(50)])))
            yield text[: rng.randrange(len(text) + 1)].encode()
        elif kind == 2:
            yield json.dumps(
                {
                    rng.choice(["status", "value", "pairs", "enc", "token", "stdout"]): rng.choice(
                        [None, 1, "ok", [], {}, [{}], True]
                    )
                    for _ in range(3)
                }
            ).encode()
        elif kind == 3:
            depth = rng.randrange(1, 3000)
            yield (
                (b"[" * depth + b"]" * depth)
                if rng.random() < 0.5
                else b'{"a":' * depth + b"1" + b"}" * depth
            )
        elif kind == 4:
            yield json.dumps(
                dict(good, pairs=[{"status": rng.choice(["ok", 3]), "enc": {"t": [1]}}])
            ).encode()
        else:
            yield json.dumps(good).encode()[: rng.randrange(60)] + rng.randbytes(10)


def test_any_bytes_from_a_child_become_one_outcome():
    rng = random.Random(1234)
    count = 0
    for data in _frames(rng, 20_000):
        for kind in ("output", "pairs"):
            outcome = judge.read_message(kind, data, "t")
            assert isinstance(outcome, judge.Outcome) and isinstance(outcome.status, str)
            count += 1
    assert count >= 40_000
