"""The task statements shown to the model for each benchmark family (our wording).

These are the `prompt` field of the problem records: the task only. The runner wraps them in the
R1 `<think>/<answer>` template, exactly like the training prompts.
"""

from __future__ import annotations

FUNCTION_COMPLETION = (
    "Complete the Python function below so that it does what its docstring describes. Write the "
    "complete function (signature included) in a single ```python code block.\n\n"
    "```python\n{prompt}\n```"
)

FUNCTION_FROM_DESCRIPTION = (
    "Write a Python function for the task below; it must pass the example test. Give the complete "
    "program in a single ```python code block.\n\n{description}"
)

COMPETITIVE_WITH_STARTER = (
    "Solve the following programming problem in Python.\n\n{question}\n\n"
    "Complete this starter code and return the whole class in a single ```python code block:\n\n"
    "```python\n{starter_code}\n```"
)

COMPETITIVE_STDIN = (
    "Solve the following programming problem in Python.\n\n{question}\n\n"
    "Your program reads the input from standard input and writes the answer to standard output. "
    "Return the whole program in a single ```python code block."
)

PREDICT_OUTPUT = (
    "Here is a Python function and a call of it. Work out the exact value the call returns and "
    "answer with that value written as a Python literal.\n\n```python\n{code}\n```\n\n"
    "Call: `{call}`"
)

PREDICT_INPUT = (
    "Here is a Python function and a value it returned. Give a call of `{entry_point}` that returns "
    "exactly that value, written as the Python call (for example `{entry_point}([1, 2], 'a')`)."
    "\n\n```python\n{code}\n```\n\nReturned value: `{output}`"
)

# Math prompts are the question alone (AZR's `azr` template). The `azr_boxed` variant that AZR
# used for the coder-7B model appends this instruction; the runner decides which one to use.
MATH_BOXED_INSTRUCTION = "Please put your final answer within \\boxed{}."
