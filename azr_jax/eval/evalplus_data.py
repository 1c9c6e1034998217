"""Facts about the EvalPlus data files that a loader must know to test like EvalPlus does.

1. MBPP+ stores test inputs as JSON, which has no tuples, sets or complex numbers. For the tasks
   whose functions expect those types, EvalPlus converts the inputs back after reading the file;
   the table `_MBPP_INPUT_CONVERSIONS` lists, per MBPP task number, which argument is rebuilt how.
2. A few tasks accept more than one right answer, so EvalPlus checks them with a special oracle
   instead of equality (`problems.ORACLE_*`), keyed by the function name.

The task numbers and function names are data facts of the EvalPlus releases (HumanEval+ v0.1.10,
MBPP+ v0.2.0); the conversion code is ours.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azr_jax.eval.problems import (
    ORACLE_ALT_DIGITS,
    ORACLE_ALT_PYRAMID,
    ORACLE_ANY_OUTPUT,
    ORACLE_EXACT,
    ORACLE_EXACT_OR_ZERO,
    ORACLE_NOT_NONE,
    ORACLE_POLY_ROOT,
    ORACLE_SET_EQUAL,
)

Args = list[Any]


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _tuples_inside(value: Any) -> Any:
    return [_tuple(item) for item in value] if isinstance(value, list) else value


def _deep_tuple(value: Any) -> Any:
    return tuple(_deep_tuple(item) for item in value) if isinstance(value, list) else value


def _all_args_tuple(args: Args) -> Args:
    return [_tuple(arg) for arg in args]


def _all_args_tuples_inside(args: Args) -> Args:
    return [_tuples_inside(arg) for arg in args]


def _first_arg_tuples_inside(args: Args) -> Args:
    return [_tuples_inside(args[0])] + args[1:]


def _second_arg_tuple(args: Args) -> Args:
    return [args[0], _tuple(args[1])] + args[2:]


def _first_arg_tuple(args: Args) -> Args:
    return [_tuple(args[0])] + args[1:]


def _all_args_tuple_of_tuples(args: Args) -> Args:
    return [_tuple(_tuples_inside(arg)) for arg in args]


def _first_arg_items_and_arg_tuple(args: Args) -> Args:
    return [_tuple(_tuples_inside(args[0]))] + [_tuple(arg) for arg in args[1:]]


def _first_arg_sets(args: Args) -> Args:
    # Non-empty lists become sets; an empty one is stored for `{}` (a dict, as in the release).
    return [[set(item) if isinstance(item, list) and item else {} for item in args[0]]] + args[1:]


def _float_and_complex(args: Args) -> Args:
    return [float(args[0]), complex(args[1])] + args[2:]


def _first_arg_complex(args: Args) -> Args:
    return [complex(args[0])] + args[1:]


def _dict_values_tuple(args: Args) -> Args:
    return [{key: _tuple(value) for key, value in args[0].items()}] + args[1:]


def _everything_tuple(args: Args) -> Args:
    return list(_deep_tuple(args))


_CONVERSIONS_BY_TASK: dict[Callable[[Args], Args], tuple[int, ...]] = {
    _all_args_tuple: (
        2,
        116,
        132,
        143,
        222,
        261,
        273,
        394,
        399,
        421,
        424,
        429,
        470,
        560,
        579,
        596,
        616,
        630,
        726,
        740,
        744,
        809,
    ),
    _all_args_tuples_inside: (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780),
    _first_arg_tuples_inside: (75, 413, 444, 753),
    _second_arg_tuple: (106, 750),
    _first_arg_sets: (115,),
    _float_and_complex: (124,),
    _first_arg_tuple: (250, 307, 405, 446, 617, 720, 763, 808),
    _all_args_tuple_of_tuples: (259, 401, 445),
    _first_arg_items_and_arg_tuple: (278,),
    _dict_values_tuple: (722,),
    _first_arg_complex: (252,),
    _everything_tuple: (580, 615, 791),
}
_MBPP_INPUT_CONVERSIONS: dict[int, Callable[[Args], Args]] = {
    task: convert for convert, tasks in _CONVERSIONS_BY_TASK.items() for task in tasks
}

_HUMANEVAL_ORACLES = {"find_zero": ORACLE_POLY_ROOT}
_MBPP_ORACLES = {
    "are_equivalent": ORACLE_ANY_OUTPUT,
    "sum_div": ORACLE_EXACT_OR_ZERO,
    "surface_Area": ORACLE_ALT_PYRAMID,
    "digit_distance_nums": ORACLE_ALT_DIGITS,
    **{
        name: ORACLE_SET_EQUAL
        for name in (
            "similar_elements",
            "find_char_long",
            "common_in_nested_lists",
            "extract_singly",
            "larg_nnum",
            "intersection_array",
            "find_dissimilar",
            "Diff",
        )
    },
    **{name: ORACLE_NOT_NONE for name in ("check_str", "text_match_three", "text_starta_endb")},
}


def mbpp_task_number(task_id: str) -> int:
    """`Mbpp/123` -> 123."""
    return int(str(task_id).rsplit("/", 1)[-1])


def convert_mbpp_inputs(task_id: str, inputs: list[Args]) -> list[Args]:
    """Rebuild the argument types of one MBPP+ task's stored inputs."""
    convert = _MBPP_INPUT_CONVERSIONS.get(mbpp_task_number(task_id))
    if convert is None:
        return inputs
    return [convert(list(args)) for args in inputs]


def oracle_for(dataset: str, entry_point: str) -> str:
    """The oracle EvalPlus uses for `entry_point` in 'humaneval' or 'mbpp'."""
    table = _HUMANEVAL_ORACLES if dataset == "humaneval" else _MBPP_ORACLES
    return table.get(entry_point, ORACLE_EXACT)
