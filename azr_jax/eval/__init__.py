"""Evaluation: benchmark loaders, answer extraction, math comparison and code test programs.

- `benchmarks`: registry (`load_benchmark`, groups, `paper_averages`); per-family loaders in
  `loaders_code`, `loaders_exec`, `loaders_math`, `tfds_source`; records in `problems`.
- `extract`: answers from `<answer>` blocks (code blocks, boxed math).
- `math_normalize`: `answers_equal(prediction, reference)`.
- `test_programs`: `build_test_program(problem, answer)` -> self-contained script for the sandbox.
See README.md in this folder for file formats and where to get each benchmark.
"""
