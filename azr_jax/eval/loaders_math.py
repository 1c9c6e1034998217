"""Loaders for the math benchmarks: MATH500, AIME 2024/2025, AMC 2023, Minerva, OlympiadBench, GSM8K.

All come as `data/<name>/test.jsonl` in the Qwen2.5-Math / simpleRL-reason evaluation suites
(the harness AZR's math numbers come from: `QwenLM/Qwen2.5-Math` `evaluation/data/`,
`hkust-nlp/simpleRL-reason` `eval/data/`, and AZR's `evaluation/math_eval/`). Field names differ
per set and between copies, so each row is read by the first field present:

| set           | question                         | reference answer                                         |
|---------------|----------------------------------|----------------------------------------------------------|
| math500       | `problem`                        | `answer` (else the last `\\boxed{}` of `solution`)        |
| aime24/aime25 | `problem` (or `question`)        | `answer`                                                 |
| amc23         | `question` (or `problem`)        | `answer` (sometimes a number such as `27.0`)             |
| minerva       | `problem` (or `question`)        | last `\\boxed{}` of `solution` (or `answer` / `gt`)       |
| olympiadbench | `question` (or `problem`)        | `final_answer[0]` without `$` (or `answer`)              |
| gsm8k         | `question`                       | what follows `####` in `answer` (thousands commas dropped) |

Ids come from `unique_id`, `id`, `idx` when present, else the row number.
"""

from __future__ import annotations

import os
from typing import Any

from azr_jax.eval.extract import last_boxed
from azr_jax.eval.jsonl import Row, build_each, read_rows
from azr_jax.eval.problems import KIND_MATH, MathProblem

QUESTION_FIELDS = ("problem", "question", "Question", "input")
ANSWER_FIELDS = ("answer", "final_answer", "gt", "target")
SOLUTION_FIELDS = ("solution", "gt_cot")
ID_FIELDS = ("unique_id", "id", "idx", "task_id")


def _answer_text(value: Any) -> str | None:
    """Reference answers are text, numbers (`27.0` -> `27`) or one-element lists."""
    if isinstance(value, list):
        if not value:
            return None
        value = value[0] if len(value) == 1 else ", ".join(str(v).strip().strip("$") for v in value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
            text = text.strip("$").strip()
        return text or None
    return None


def math_problem_from_row(row: Row, benchmark: str, number: int) -> MathProblem:
    """One math row (any of the layouts above) -> problem."""
    question_field = next((k for k in QUESTION_FIELDS if k in row.data), None)
    if question_field is None:
        raise row.fail(f"no question field (looked for {', '.join(QUESTION_FIELDS)})")
    answer = None
    for key in ANSWER_FIELDS:
        if key in row.data:
            answer = _answer_text(row.data[key])
            if answer is not None:
                break
    solution = next((str(row.data[k]) for k in SOLUTION_FIELDS if row.data.get(k)), None)
    if isinstance(row.data.get("solution"), list):  # OlympiadBench keeps a list of solutions
        solution = "\n\n".join(map(str, row.data["solution"]))
    if answer is not None and "####" in answer:  # GSM8K: the rationale, then `#### 1,234`
        solution, answer = answer, answer.rsplit("####", 1)[1].strip().replace(",", "") or None
    if answer is None and solution is not None:
        answer = last_boxed(solution)
    if not answer:
        raise row.fail(
            f"no reference answer (looked for {', '.join(ANSWER_FIELDS)} and a \\boxed{{}} "
            f"in {', '.join(SOLUTION_FIELDS)})"
        )
    id_field = next((k for k in ID_FIELDS if k in row.data), None)
    problem_id = str(row.data[id_field]) if id_field else f"{benchmark}/{number}"
    question = row.text(question_field)
    meta = {
        key: row.data[key]
        for key in ("subject", "level", "type", "subfield", "answer_type")
        if key in row.data
    }
    return MathProblem(
        id=problem_id,
        benchmark=benchmark,
        kind=KIND_MATH,
        prompt=question.strip(),
        answer=answer,
        solution=solution,
        meta=meta,
    )


def load_math(path: str | os.PathLike[str], benchmark: str) -> list[MathProblem]:
    """Any of the math sets (`benchmark` names it in the records)."""
    rows = read_rows(path)
    numbers = {id(row): number for number, row in enumerate(rows)}
    return build_each(rows, lambda row: math_problem_from_row(row, benchmark, numbers[id(row)]))
