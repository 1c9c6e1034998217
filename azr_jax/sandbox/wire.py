"""Names shared by every process of the farm: probe kinds and status strings.

No imports, so the zygote (the small interpreter every sandboxed child is forked from) can load it
without growing its image.
"""

# Probe kinds understood by the farm.
PROBE_OUTPUT = "output"  # repr(f(<args[0]>)), with the determinism check (proposal validity)
PROBE_EQUAL = "equal"  # gold (args[0]) vs the predicted output expression (args[1]): deduction
PROBE_CALL_EQUAL = "call_equal"  # gold (args[0]) vs f(<args[1]>): abduction
PROBE_PAIRS = "pairs"  # args = (in_0, out_0, in_1, out_1, ...): out_k vs f(<in_k>): induction
PROBE_SCRIPT = "script"  # exec the whole program; ok if it finishes without an exception
PROBES = (PROBE_OUTPUT, PROBE_EQUAL, PROBE_CALL_EQUAL, PROBE_PAIRS, PROBE_SCRIPT)
CHECKING_PROBES = (PROBE_EQUAL, PROBE_CALL_EQUAL, PROBE_PAIRS)

# Status strings (the `error:` and `rejected:` ones carry a suffix).
STATUS_OK = "ok"
STATUS_TIMEOUT = "timeout"
STATUS_MEMORY = "memory"
STATUS_KILLED = "killed"
STATUS_OUTPUT_TOO_LARGE = "output_too_large"
ERROR_PREFIX = "error: "
REJECTED_PREFIX = "rejected: "

SEMANTICS = ("official", "strict")


def error_status(exc_type: str, message: str, limit: int = 500) -> str:
    """`error: <ExceptionType>: <message>` (message shortened to `limit` characters)."""
    message = message if len(message) <= limit else message[: limit - 3] + "..."
    return f"{ERROR_PREFIX}{exc_type}: {message}" if message else f"{ERROR_PREFIX}{exc_type}"
