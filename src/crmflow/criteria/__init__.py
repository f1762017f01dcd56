"""The pure criteria evaluator: one code path for enrollment, branches, goals and unenrollment.

``evaluate(group, record, now=...)`` returns whether the record matches and a trace of every
filter with the value it saw (the answer to "why did (not) this record enroll").
``compile_group`` turns a group into a plain closure for the hot path (trigger index).
"""

from crmflow.criteria.evaluate import EvalResult, FilterTrace, compile_group, evaluate
from crmflow.criteria.operators import OPERATORS, Operator, get_operator

__all__ = [
    "OPERATORS",
    "EvalResult",
    "FilterTrace",
    "Operator",
    "compile_group",
    "evaluate",
    "get_operator",
]
