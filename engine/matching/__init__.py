"""Matching (docs/matching.md): the passes over one bucket, the evaluation of the candidate
pairs, and a party's numbers over all its buckets.

Pure: no I/O, no networking, no timing.  Modules, in the order they depend on each other:

``errors``      :class:`MatchingError`
``elements``    pass elements, pair ids, the plaintext intersection (the reference's PSI)
``bucket``      :class:`BucketMatcher` (the passes of one bucket), :func:`finish_bucket`
``evaluation``  the MPC's result checked and cut per bucket; the plaintext evaluation
``outcome``     :class:`JobTally`, :class:`SideFacts`, :class:`Outcome` (summary numbers)

Vectorised throughout (numpy / polars); no per-record Python loop.  The private job and
the reference reconciler drive it through :class:`engine.side.OperatorSide`.
"""

from engine.matching.bucket import (
    BucketMatcher, BucketTally, CandidateValues, EvaluationSlice, PsiState, finish_bucket,
)
from engine.matching.elements import (
    PassElements, element_dtype, encode_elements, pair_ids_hex, plaintext_intersection,
)
from engine.matching.errors import MatchingError
from engine.matching.evaluation import checked_evaluation, plaintext_evaluation, slices
from engine.matching.outcome import JobTally, Outcome, Review, SideFacts

__all__ = [
    "BucketMatcher", "BucketTally", "CandidateValues", "EvaluationSlice", "JobTally",
    "MatchingError", "Outcome", "PassElements", "PsiState", "Review", "SideFacts",
    "checked_evaluation", "element_dtype", "encode_elements", "finish_bucket",
    "pair_ids_hex", "plaintext_evaluation", "plaintext_intersection", "slices",
]
