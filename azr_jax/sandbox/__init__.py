"""Sandbox farm: isolated, parallel, asynchronous execution of model-written Python.

Typical use (the trainer never evaluates model text itself):

    from azr_jax.sandbox import SandboxFarm, output_job, abduction_job
    with SandboxFarm() as farm:
        print(farm.isolation_report)
        futures = farm.submit([output_job(program, "[1, 2]"), ...])   # non-blocking
        results = [f.result() for f in futures]                        # submission order

This package imports only the standard library: worker processes load it by file path.
Verdicts are decided by the worker on data (values.py, codec.py): no answer or stored gold is
ever executed where it is judged. See README.md for the threat model and the official semantics.
"""

from .config import OFFICIAL_BANNED_MODULES, SEMANTICS, FarmConfig, IsolationConfig, JobOptions
from .farm import SandboxFarm
from .jobs import (
    PROBE_CALL_EQUAL,
    PROBE_EQUAL,
    PROBE_OUTPUT,
    PROBE_PAIRS,
    PROBE_SCRIPT,
    STATUS_KILLED,
    STATUS_MEMORY,
    STATUS_OK,
    STATUS_OUTPUT_TOO_LARGE,
    STATUS_TIMEOUT,
    Job,
    Result,
)
from .probes import (
    abduction_job,
    check_abduction,
    check_deduction,
    check_induction,
    deduction_job,
    induction_job,
    output_job,
    program_job,
    run_output,
    run_program,
    submit_outputs,
    truncate_repr,
)
from .static_checks import validate_call_arguments, validate_expression, validate_program
from .values import NotData, literal_equal, parse_call_arguments, parse_literal, same_value

__all__ = [
    "OFFICIAL_BANNED_MODULES",
    "SEMANTICS",
    "NotData",
    "literal_equal",
    "parse_call_arguments",
    "parse_literal",
    "same_value",
    "FarmConfig",
    "IsolationConfig",
    "JobOptions",
    "SandboxFarm",
    "Job",
    "Result",
    "PROBE_OUTPUT",
    "PROBE_EQUAL",
    "PROBE_CALL_EQUAL",
    "PROBE_PAIRS",
    "PROBE_SCRIPT",
    "STATUS_OK",
    "STATUS_TIMEOUT",
    "STATUS_MEMORY",
    "STATUS_KILLED",
    "STATUS_OUTPUT_TOO_LARGE",
    "output_job",
    "deduction_job",
    "abduction_job",
    "induction_job",
    "program_job",
    "run_output",
    "check_deduction",
    "check_abduction",
    "check_induction",
    "run_program",
    "submit_outputs",
    "truncate_repr",
    "validate_program",
    "validate_call_arguments",
    "validate_expression",
]
