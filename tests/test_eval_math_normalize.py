"""Math answer comparison: equal and unequal spellings judged by hand (the independent reference)."""
import pytest

from azr_jax.eval import math_normalize
from azr_jax.eval.math_normalize import answers_equal, normalize_answer, numeric_value

EQUAL = [
    ("\\frac{1}{2}", "0.5"),
    ("\\dfrac12", "1/2"),
    ("\\boxed{\\frac{3}{4}}", "3/4"),
    ("\\tfrac{3}{4}", "\\frac34"),
    ("\\left( 1, 2 \\right)", "(1,2)"),
    ("\\text{(C)}", "C"),
    ("30^\\circ", "30"),
    ("30^{\\circ}", "30°"),
    ("$5$", "5"),
    ("1,000", "1000"),
    ("1\\,000\\,000", "1000000"),
    ("3.0", "3"),
    ("2.50", "2.5"),
    ("50\\%", "50"),
    ("x = 3", "3"),
    ("k=\\frac{1}{2}", "0.5"),
    ("\\sqrt{2}", "\\sqrt2"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
    ("\\pi", "3.14159"),
    ("3\\pi", "9.42478"),
    ("(1, 2]", "(1,2]"),
    ("\\frac{1}{3}", "0.3333"),
    ("4.5e33", "4.5\\times10^{33}"),
    ("10 \\text{ cm}", "10"),
    ("10\\mathrm{~cm}", "10"),
    ("5 cm", "5"),
    ("\\$12.50", "12.5"),
    ("2^{10}", "1024"),
    ("-\\frac{1}{2}", "-0.5"),
    ("\\frac{-1}{2}", "-\\frac12"),
    ("\\{1,2,3\\}", "\\{3,2,1\\}"),
    ("1, 2", "2, 1"),
    ("\\infty", "inf"),
    ("yes", "Yes"),
    ("(-\\infty, 3)", "(-\\infty,3)"),
    ("[2,5)\\cup(7,9]", "[2, 5) \\cup (7, 9]"),
    ("x=1, y=2", "1, 2"),
    ("\\left[ 0, \\frac{1}{2} \\right)", "[0, 0.5)"),
    ("0.5\\%", "0.005"),
    (".5", "0.5"),
]

UNEQUAL = [
    ("(1,2)", "[1,2]"),          # open vs closed interval
    ("(1,2)", "(2,1)"),          # ordered pair
    ("\\frac13", "\\frac14"),
    ("100000", "100001"),        # exact integers get no tolerance
    ("12", "12.5"),
    ("\\sqrt{2}", "1.5"),
    ("2^{10}", "1000"),
    ("1, 2", "1, 2, 3"),
    ("[1,2]", "1, 2"),           # a closed interval is not a bare list
    ("", "0"),
    ("f(x)=2x", "2x"),           # only a plain variable on the left is stripped
    ("\\text{(C)}", "D"),
    ("-3", "3"),
]


@pytest.mark.parametrize("pred,gold", EQUAL)
def test_equal_forms(pred, gold):
    assert answers_equal(pred, gold)
    assert answers_equal(gold, pred)


@pytest.mark.parametrize("pred,gold", UNEQUAL)
def test_unequal_forms(pred, gold):
    assert not answers_equal(pred, gold)
    assert not answers_equal(gold, pred)


def test_enough_pairs():
    assert len(EQUAL) + len(UNEQUAL) >= 30


@pytest.mark.parametrize("text", [pair[0] for pair in EQUAL + UNEQUAL])
def test_normalize_is_idempotent(text):
    once = normalize_answer(text)
    assert normalize_answer(once) == once


def test_canonical_spellings():
    assert normalize_answer("\\left( \\dfrac{1}{2}, 3 \\right)") == "(\\frac{1}{2},3)"
    assert normalize_answer("\\text{ Yes }") == "Yes"
    assert normalize_answer("1{,}234") == "1234"
    assert normalize_answer("45^\\circ.") == "45"


def test_numeric_values_are_exact_where_possible():
    value, exact, decimal = numeric_value("\\frac{2}{6}")
    assert exact is not None and exact.numerator == 1 and exact.denominator == 3 and not decimal
    assert numeric_value("\\sqrt{16}")[1] == 4
    assert numeric_value("x+1") is None
    assert numeric_value("2^{100000}") is None          # refused, not computed
    assert numeric_value("\\frac{1}{0}") is None


def test_symbolic_fallback_uses_sympy_when_present():
    pytest.importorskip("sympy")
    assert answers_equal("2n-2", "2(n-1)")
    assert answers_equal("x^2+2x+1", "(x+1)^2")
    assert answers_equal("\\frac{a}{b}", "a/b")
    assert answers_equal("\\sin x", "\\sin(x)")
    assert not answers_equal("n^2", "n^3")
    assert not answers_equal("2n", "2n+1")


def test_without_sympy_symbolic_answers_are_only_string_equal(monkeypatch):
    monkeypatch.setattr(math_normalize, "_symbolic_equal", lambda pred, gold: None)
    assert not answers_equal("2n-2", "2(n-1)")
    assert answers_equal("2n - 2", "2n-2")
    assert answers_equal("\\frac{1}{2}", "0.5")


def test_unsafe_text_never_reaches_sympy():
    assert math_normalize._latex_to_expression("__import__('os').system('true')") is None
    assert math_normalize._latex_to_expression("a.__class__") is None
    assert math_normalize._latex_to_expression("\\frac{x}{2}+\\sqrt{y}") == "((x)/(2))+sqrt(y)"
    assert not answers_equal("__import__('os').getcwd()", "1")


MALFORMED = ["(\\right)%", "\\sqrt^", "x\\2}\\text{\\pi [\\sqrt.\\infty/\\text{", ")8", "{" * 400 + "}" * 400,
             "(" * 300 + "1" + ")" * 300, "\\frac{", "}{", "^^^", "1" * 5000, "\\boxed{", "\\left(" * 100]


@pytest.mark.parametrize("text", MALFORMED, ids=[f"malformed{i}" for i in range(len(MALFORMED))])
def test_malformed_answers_never_raise(text):
    """Model output is arbitrary: comparison must answer, not crash (cases found by fuzzing)."""
    assert answers_equal(text, "1") in (True, False)
    assert answers_equal("\\pi^3", text) in (True, False)
