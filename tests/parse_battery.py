"""A battery of hand-written model responses and the official parse of each, role by role.

Used by tests/test_azr_official_parsing.py (official semantics must reproduce every official
format flag and extracted text) and runnable on its own to count agreement for any checkout:

    python tests/parse_battery.py [REPO]   # REPO's azr_jax (default: this one), both semantics
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any

F = "```"
NUM_INPUTS = 3


def _code(body: str, tag: str = "python") -> str:
    return f"{F}{tag}\n{body}\n{F}"


def _inp(x: str, tag: str = "input") -> str:
    return f"{F}{tag}\n{x}\n{F}"


PROGRAMS = {
    "simple": "def f(x):\n    return x * 2",
    "renamed": "def solve(n):\n    if n <= 1:\n        return 1\n    return n * solve(n - 1)",
    "attr_call": "class A:\n    pass\ndef go(a):\n    return len(str(a)) + go2(a)\ndef go2(a):\n    return obj.go(a) if False else 1",
    "two_defs": "def helper(x):\n    return x + 1\ndef main(x):\n    return helper(x) * 2",
    "has_f_later": "def g(x):\n    return x\ndef f(x):\n    return g(x) + 1",
    "nested": "def f(xs):\n    def key(v):\n        return -v\n    return sorted(xs, key=key)",
    "imports": "import math\nfrom collections import Counter\ndef f(s):\n    import json\n    return math.floor(len(Counter(s))) + len(json.dumps(s))",
    "no_def": "x = lambda a: a\nresult = x(3)",
    "docstring": 'def f(s):\n    """Count things."""\n    # a comment\n    return len(s)\nprint(f("ab"))',
    "only_doc": 'def f(s):\n    """Only a docstring."""',
    "unicode": "def f(s):\n    return s.replace('é', 'ü') + '→'",
    "crlf": "def f(x):\r\n    return x + 1",
    "tabs": "def f(x):\n\treturn [x] * 2",
    "syntax_error": "def f(x:\n    return x",
    "long": "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(400)) + "    return x",
    "test_input_in_code": "def f(x):\n    return x\nassert f(1) == 1",
    "async": "async def f(x):\n    return x",
    "blank_runs": "\n\n\n   \n" + "def  f (x):\n    return x",
}

INPUTS = [
    "3",
    "'abc', [1, 2]",
    "{'a': 1, 'b': (2, 3)}",
    "'multi\\nline'",
    "",
    "[1, 2]  # a comment",
    "'Assistant: hi'",
    "'é'",
]


def _proposer_bodies() -> list[tuple[str, str]]:
    """(name, answer body) for deduction/abduction proposals."""
    out = []
    for name, prog in PROGRAMS.items():
        out.append((f"io/{name}", f"Plan first.\n{_code(prog)}\n{_inp('3')}"))
    for i, x in enumerate(INPUTS):
        out.append((f"io/input{i}", f"{_code(PROGRAMS['simple'])}\n\n{_inp(x)}"))
    p = PROGRAMS["simple"]
    out += [
        ("io/input_first", f"{_inp('5')}\n{_code(p)}"),
        ("io/py_fence", f"{_code(p, 'py')}\n{_inp('2')}"),
        ("io/python3_fence", f"{_code(p, 'python3')}\n{_inp('2')}"),
        ("io/space_python", f"{_code(p, ' python')}\n{_inp('2')}"),
        ("io/Python_caps", f"{_code(p, 'Python')}\n{_inp('2')}"),
        ("io/untagged", f"{_code(p, '')}\n{_inp('2')}"),
        ("io/python_same_line", f"{F}python def f(x): return x{F}\n{_inp('2')}"),
        ("io/inline_untagged", f"{F}def f(x): return x{F}\n{_inp('2')}"),
        ("io/inputs_tag", f"{_code(p)}\n{_inp('2', 'inputs')}"),
        ("io/INPUT_caps", f"{_code(p)}\n{_inp('2', 'INPUT')}"),
        ("io/input_spaces", f"{_code(p)}\n{F}input   \n  7  \n{F}"),
        ("io/input_comment", f"{_code(p)}\n# Input: [4, 5]"),
        ("io/input_comment_then_fence", f"{_code(p)}\n# Input: 9\n{F}output\n18\n{F}"),
        ("io/no_input", _code(p)),
        ("io/no_code", _inp("1")),
        ("io/trailing_output", f"{_code(p)}\n{_inp('2')}\n{F}output\n4\n{F}"),
        (
            "io/two_programs",
            "\n".join(
                [_code("def a(x):\n    return 1"), _inp("1"), _code("def b(x):\n    return 2"), _inp("2")]
            ),
        ),
        ("io/unterminated_code", f"{_inp('1')}\n{F}python\ndef f(x): return x"),
        ("io/nested_fence_in_string", _code("def f(x):\n    return '```' + x") + "\n" + _inp("'a'")),
        ("io/four_backticks", f"````python\n{p}\n````\n{_inp('2')}"),
        ("io/empty", ""),
        ("io/whitespace", "   \n\t "),
        ("io/words_only", "I could not think of a program."),
        ("io/code_no_newline", f"{F}python{p}{F}\n{_inp('2')}"),
        ("io/input_no_newline", f"{_code(p)}\n{F}input 2{F}"),
        ("io/input_call", f"{_code(p)}\nThe test is input(4) here."),
    ]
    return out


def _induction_bodies() -> list[tuple[str, str]]:
    msg = _inp("Double the number.", "message")
    blocks = lambda n, tag="input": "\n".join(_inp(str(i), tag) for i in range(n))  # noqa: E731
    return [
        ("ind/exact", f"{blocks(3)}\n{msg}"),
        ("ind/more", f"{blocks(5)}\n{msg}"),
        ("ind/fewer", f"{blocks(2)}\n{msg}"),
        ("ind/message_first", f"{msg}\n{blocks(3)}"),
        ("ind/two_messages", f"{blocks(3)}\n{_inp('one', 'message')}\n{_inp('two', 'Message')}"),
        ("ind/message_tag", f"{blocks(3)}\n<message> tagged hint </message>"),
        ("ind/message_line", f"{blocks(3)}\n# Message: a line hint\nmore"),
        ("ind/no_message", blocks(3)),
        ("ind/inputs_tag", f"{blocks(3, 'inputs')}\n{msg}"),
        ("ind/numbered_tags", f"{blocks(3, 'input_1')}\n{msg}"),
        ("ind/input_comments", "# Input: 1\n# Input: 2\n# Input: 3\n" + msg),
        ("ind/mixed_case", f"{F}INPUT\n1\n{F}\n{F}Input\n2\n{F}\n{F}input\n3\n{F}\n{msg}"),
        ("ind/empty_inputs", f"{F}input\n{F}\n{F}input\n\n{F}\n{F}input\n 3 \n{F}\n{msg}"),
        ("ind/unicode", f"{blocks(3)}\n{_inp('Übersetze → ü', 'message')}"),
        ("ind/code_too", _code("def f(x):\n    return x") + f"\n{blocks(3)}\n{msg}"),
    ]


def _solver_bodies() -> list[tuple[str, str]]:
    return [
        ("sol/output_block", _inp("[1, 2]", "output")),
        ("sol/input_block", _inp("'a', 3")),
        ("sol/both_blocks", f"{_inp('1')}\n{_inp('2', 'output')}"),
        ("sol/two_outputs", f"{_inp('1', 'output')} no, {_inp('2', 'output')}"),
        ("sol/output_spaces", f"{F}output  \n  {{'k': 1}}  \n{F}"),
        ("sol/output_comment", "# Output: 12\n"),
        ("sol/input_comment", "# Input: 'x', 1"),
        ("sol/output_call", "so output(3, 4) it is"),
        ("sol/input_call", "call f with input('hello')"),
        ("sol/output_tag", "<output> 5 </output>"),
        ("sol/input_tag_open", "<input> 5, 6"),
        ("sol/phrase_output", "The output is 'xyz'."),
        ("sol/phrase_input", "So the input is [1, 2]."),
        ("sol/whole", "  42  "),
        ("sol/whole_multiline", "[1,\n 2]"),
        ("sol/python_block", _code("def f(a):\n    return a")),
        ("sol/python_then_input", _code("def f(a):\n    return 1") + "\n" + _inp("3")),
        ("sol/untagged_code", _code("def f(a):\n    return a", "")),
        ("sol/py_code", _code("def f(a):\n    return [a]", "py")),
        ("sol/two_codes", _code("def f(a): return 1") + "\nbetter:\n" + _code("def f(a):\n    return a")),
        ("sol/output_then_python", f"{_code('def f(a): return a')}\n{_inp('7', 'output')}"),
        ("sol/unicode", _inp("'héllo → wörld'", "output")),
        ("sol/empty", ""),
        ("sol/quote_tail", "'done'"),
        ("sol/error_name", _inp("ValueError: bad", "output")),
        ("sol/long", _inp("[" + ", ".join(str(i) for i in range(3000)) + "]", "output")),
    ]


def _wrap(body: str, variant: str) -> str:
    """A response as the model writes it after a prompt ending in '<think>'."""
    return {
        "ok": f" Let me think.</think>\n<answer>\n{body}\n</answer>",
        "tight": f"t</think><answer>{body}</answer>",
        "no_answer": f" hmm </think>\n{body}",
        "unterminated": f" t</think>\n<answer>\n{body}",
        "repeated": f" t</think><answer>draft</answer> wait <answer>\n{body}\n</answer>",
        "no_think_close": f" t <answer>{body}</answer>",
        "text_between": f" t</think> so: <answer>{body}</answer>",
        "assistant_inside": f" t</think> Assistant: <answer>{body}</answer>",
        "assistant_after": f" t</think><answer>{body}</answer>\nUser: more?\nAssistant: sure",
        "trailing_quote": f" t</think><answer>{body}</answer>'",
        "quote_unterminated": f' t</think><answer>{body}"',
        "double_think": f"<think> again</think><answer>{body}</answer>",
        "answer_in_think": f" <answer>x</answer></think><answer>{body}</answer>",
        "caps_tags": f" t</THINK><ANSWER>{body}</ANSWER>",
        "trailing_text": f" t</think>  <answer>{body}</answer> extra text",
    }[variant]


VARIANTS = (
    "ok",
    "tight",
    "no_answer",
    "unterminated",
    "repeated",
    "no_think_close",
    "text_between",
    "assistant_inside",
    "assistant_after",
    "trailing_quote",
    "quote_unterminated",
    "double_think",
    "answer_in_think",
    "caps_tags",
    "trailing_text",
)


def responses() -> list[tuple[str, str, str]]:
    """(case name, kind, response) for kind in io / ind / sol: >= 150 responses."""
    out = []
    groups = (("io", _proposer_bodies()), ("ind", _induction_bodies()), ("sol", _solver_bodies()))
    for kind, bodies in groups:
        for i, (name, body) in enumerate(bodies):
            # every body well formed, plus a rotating malformed wrapper
            out.append((f"{name}|ok", kind, _wrap(body, "ok")))
            variant = VARIANTS[1 + i % (len(VARIANTS) - 1)]
            out.append((f"{name}|{variant}", kind, _wrap(body, variant)))
    simple = f"{_code(PROGRAMS['simple'])}\n{_inp('3')}"
    for variant in VARIANTS:  # every wrapper on one well-formed proposal and one answer
        out.append((f"wrap/io|{variant}", "io", _wrap(simple, variant)))
        out.append((f"wrap/sol|{variant}", "sol", _wrap(_inp("6", "output"), variant)))
    out += [
        ("raw/empty", "sol", ""),
        ("raw/only_think", "sol", " thinking forever"),
        ("raw/very_long", "io", " " + "blah " * 20000 + "</think><answer>" + simple + "</answer>"),
        ("raw/many_fences", "sol", "</think><answer>" + (F + "output\n1\n" + F) * 300 + "</answer>"),
        ("raw/unicode_tags", "sol", " ü</think><answer>→ " + _inp("'ß'", "output") + "</answer>"),
        (
            "raw/nested_answer",
            "sol",
            " t</think><answer>outer <answer>" + _inp("1", "output") + "</answer></answer>",
        ),
        ("raw/fence_in_think", "io", f" {_code('def g(x): return 0')} hmm</think><answer>{simple}</answer>"),
        ("raw/bare_blocks", "io", "\n" + simple),
    ]
    return out


# --------------------------------------------------------------------------- the official side
PROMPT = "Complete the task.\n```python\ndef f(x):\n    return x\n```"
ROLES = (
    "pred_code_o",
    "pred_code_i",
    "pred_code_f",
    "gen_code_io",
    "gen_code_io_llama",
    "gen_code_f",
    "learn_code_o",
    "learn_code_i",
    "learn_code_f",
    "seed_code_io",
    "seed_code_f",
)


def official_outcomes(off: Any, response: str) -> dict[str, Any]:
    """Every role's official format flag and extracted text for one response."""
    full = off.instruction_following.format(PROMPT) + response
    gen = full.split("Assistant:")[1].strip().strip("\"'")
    fmt = off.get_format_reward(gen, "answer")
    content = off.extract_answer(gen, "answer")
    raw_content = off.extract_answer(response, "answer")
    io = lambda s, **kw: off.parse_code_input_output(s, parse_output=False, **kw)  # noqa: E731
    out = {
        "pred_code_o": (fmt, off.extract_input_output(content, return_input=False, return_output=True)),
        "pred_code_i": (fmt, off.extract_input_output(content, return_input=True)),
        "pred_code_f": (fmt, off.parse_code_function(content)),
        "gen_code_io": (fmt, io(content)),
        "gen_code_io_llama": (
            fmt,
            io(content, reject_multiple_functions=False, f_replace_location="any_last"),
        ),
        "gen_code_f": (fmt, off.parse_inputs_message(content, num_inputs=NUM_INPUTS)),
        "learn_code_o": off.extract_input_output(raw_content, return_input=False, return_output=True),
        "learn_code_i": off.extract_input_output(raw_content, return_input=True),
        "learn_code_f": off.parse_code_function(raw_content),
        "seed_code_io": io(response, remove_comments=True, remove_after_return=True),
        "seed_code_f": off.parse_inputs_message(response, num_inputs=NUM_INPUTS),
    }
    return out


def ours_outcomes(parsing: Any, semantics: str | None, response: str) -> dict[str, Any]:
    """The same roles through an azr_jax.azr.parsing module, in the official result shapes."""
    kw = {} if semantics is None else {"semantics": semantics}
    cfg = parsing.ParseConfig(num_inputs=NUM_INPUTS, **kw)
    llama = dataclasses.replace(cfg, reject_multiple_functions=False, entry_function="any_last")
    seed = dataclasses.replace(cfg, remove_comments=True, remove_after_return=True)
    if "raw_response" in {f.name for f in dataclasses.fields(cfg)}:
        seed = dataclasses.replace(seed, raw_response=True)

    def io(p):
        r = p.result
        return (
            float(p.format_ok),
            (True, {"code": r.program, "input": r.input, "output": "", "imports": list(r.imports)})
            if r.ok
            else (False, {}),
        )

    def ind(p):
        r = p.result
        return (
            float(p.format_ok),
            (True, {"inputs": list(r.inputs), "message": r.message}) if r.ok else (False, {}),
        )

    def sol(p, code=False):
        r = p.result
        if code:
            return (float(p.format_ok), (True, r.text) if r.ok else (False, ""))
        return (float(p.format_ok), r.text if r.ok else None)

    learn = getattr(parsing, "learnability_answer", None)

    def learned(task, code=False):
        if learn is not None:
            r = learn(response, task, cfg)
        else:  # before this battery existed: a rollout had to parse and be formatted
            p = parsing.parse_solution(response, task, cfg)
            r = p.result if p.format_ok else parsing.SolverAnswer(False)
        if code:
            return (True, r.text) if r.ok else (False, "")
        return r.text if r.ok else None

    seed_io = parsing.parse_proposal(response, "deduction", seed)
    seed_f = parsing.parse_proposal(response, "induction", seed)
    return {
        "pred_code_o": sol(parsing.parse_solution(response, "deduction", cfg)),
        "pred_code_i": sol(parsing.parse_solution(response, "abduction", cfg)),
        "pred_code_f": sol(parsing.parse_solution(response, "induction", cfg), code=True),
        "gen_code_io": io(parsing.parse_proposal(response, "deduction", cfg)),
        "gen_code_io_llama": io(parsing.parse_proposal(response, "deduction", llama)),
        "gen_code_f": ind(parsing.parse_proposal(response, "induction", cfg)),
        "learn_code_o": learned("deduction"),
        "learn_code_i": learned("abduction"),
        "learn_code_f": learned("induction", code=True),
        "seed_code_io": io(seed_io)[1],
        "seed_code_f": ind(seed_f)[1],
    }


def compare(
    official: Any, parsing: Any, semantics: str | None
) -> tuple[int, list[tuple[str, str, Any, Any]]]:
    """(number of comparisons, mismatches as (case, role, official, ours)) over every response
    and every role."""
    n, bad = 0, []
    for name, _kind, response in responses():
        want = official_outcomes(official, response)
        got = ours_outcomes(parsing, semantics, response)
        for role in ROLES:
            n += 1
            if _norm(want[role]) != _norm(got[role]):
                bad.append((name, role, want[role], got[role]))
    return n, bad


def _norm(x: Any) -> Any:
    """Official and our result shapes: a failed parse's payload does not matter."""
    if isinstance(x, tuple) and len(x) == 2 and x[0] in (True, False) and not isinstance(x[0], float):
        return (x[0], x[1] if x[0] else None)
    if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], float):
        return (x[0], _norm(x[1]))
    return x


def _official_ns() -> Any:
    import types

    import official_azr

    ns = official_azr.parsing()
    return types.SimpleNamespace(
        **vars(ns), instruction_following=official_azr.prompts().instruction_following
    )


def main(argv: list[str]) -> None:
    repo = Path(argv[1]).resolve() if len(argv) > 1 else Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(repo))
    for mod in [m for m in sys.modules if m.startswith("azr_jax")]:
        del sys.modules[mod]
    parsing = importlib.import_module("azr_jax.azr.parsing")
    off = _official_ns()
    semantics = ("official", "strict") if hasattr(parsing, "SEMANTICS") else (None,)
    print(f"{repo}: {len(responses())} responses x {len(ROLES)} roles")
    for s in semantics:
        n, bad = compare(off, parsing, s)
        print(
            f"  semantics={s or 'default'}: {n - len(bad)}/{n} agree with the official code; "
            f"responses with any difference: {len({b[0] for b in bad})}"
        )


if __name__ == "__main__":
    main(sys.argv)
