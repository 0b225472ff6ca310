"""settlechain's Python API: a small facade for programs that launch parties and read
their results.  Documented with worked examples in docs/api.md.

It holds no logic of its own: every call goes to the package that implements it.

- data: :func:`generate_data` (``data_gen``), :func:`load_rules` (``engine.rules``),
  :func:`validate` (``engine.ingest``), :func:`reconcile_plain` in the clear, for testing
  (``engine.reference``);
- parties: :func:`run_party` with a progress callback (``engine.job.party``),
  :func:`run_local_job` and :class:`LocalJob` for a whole job on this machine
  (``engine.job.local``), :class:`JsonFormatter` for machine-readable logs;
- outputs: :func:`read_outputs` and its typed objects (:mod:`settlechain.outputs`);
- the ledger: :func:`open_ledger`, :func:`verify_ledger`, SM2 keys
  (:func:`generate_keypair`, :func:`load_private_key`) (``ledger_anchor``);
- governance: :func:`rules_in_force`, :func:`propose`, :func:`vote`,
  :func:`governance_status`, :func:`inspect_proposal`, people's keys (:func:`certify`)
  and the approval of a statement (:func:`request_statement_approval`,
  :func:`approvals`, :func:`sign_approval`, :func:`statement_approval`) (``governance``).

Errors are each package's own (:mod:`settlechain.errors`): ``except settlechain.ERRORS``
catches them all, and each has ``diagnostics()``.

Importing ``settlechain`` is cheap: the names are imported when first used, so
``import settlechain`` loads neither polars, numba nor MPyC.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from settlechain.errors import (
    ERRORS,
    BillingError,
    DataGenError,
    GovernanceError,
    InputError,
    JobError,
    LedgerError,
    NotInForce,
    ProtocolError,
    RulesError,
    SettlechainError,
)

if TYPE_CHECKING:  # what the lazy names below are, for type checkers
    __version__: str
    from engine.export import ExportResult
    from engine.ingest.pipeline import IngestResult
    from engine.job.local import LocalJob
    from engine.job.logs import JsonFormatter
    from engine.rules import Rules
    from governance.api import (
        StatementApproval,
        approvals,
        certify,
        inspect as inspect_proposal,
        propose,
        request_statement_approval,
        sign_approval,
        statement_approval,
        status as governance_status,
        vote,
    )
    from governance.rules import RulePackage, rules_in_force
    from ledger_anchor.client import LedgerClient
    from ledger_anchor.opening import open_ledger
    from ledger_anchor.sm2 import PrivateKey, generate_keypair, load_private_key, save_private_key
    from ledger_anchor.verify import VerificationReport
    from settlechain.data import (
        GeneratedData,
        PlainResult,
        generate_data,
        load_rules,
        reconcile_plain,
        validate,
    )
    from settlechain.jobs import LocalJobResult, Status, run_local_job, run_party
    from settlechain.ledger import verify_ledger
    from settlechain.outputs import (
        Anchor,
        HelperOutputs,
        HelperSummary,
        OperatorOutputs,
        StageTiming,
        Statement,
        Summary,
        read_helper_outputs,
        read_operator_outputs,
        read_outputs,
    )

# name -> (module, attribute): imported on first use
_LAZY: dict[str, tuple[str, str]] = {
    # data in
    "generate_data": ("settlechain.data", "generate_data"),
    "GeneratedData": ("settlechain.data", "GeneratedData"),
    "load_rules": ("settlechain.data", "load_rules"),
    "Rules": ("engine.rules", "Rules"),
    "validate": ("settlechain.data", "validate"),
    "IngestResult": ("engine.ingest.pipeline", "IngestResult"),
    "reconcile_plain": ("settlechain.data", "reconcile_plain"),
    "PlainResult": ("settlechain.data", "PlainResult"),
    # parties and jobs
    "run_party": ("settlechain.jobs", "run_party"),
    "Status": ("settlechain.jobs", "Status"),
    "run_local_job": ("settlechain.jobs", "run_local_job"),
    "LocalJobResult": ("settlechain.jobs", "LocalJobResult"),
    "LocalJob": ("engine.job.local", "LocalJob"),
    "JsonFormatter": ("engine.job.logs", "JsonFormatter"),
    # outputs
    "read_outputs": ("settlechain.outputs", "read_outputs"),
    "read_operator_outputs": ("settlechain.outputs", "read_operator_outputs"),
    "read_helper_outputs": ("settlechain.outputs", "read_helper_outputs"),
    "OperatorOutputs": ("settlechain.outputs", "OperatorOutputs"),
    "HelperOutputs": ("settlechain.outputs", "HelperOutputs"),
    "Summary": ("settlechain.outputs", "Summary"),
    "HelperSummary": ("settlechain.outputs", "HelperSummary"),
    "Statement": ("settlechain.outputs", "Statement"),
    "Anchor": ("settlechain.outputs", "Anchor"),
    "StageTiming": ("settlechain.outputs", "StageTiming"),
    "ExportResult": ("engine.export", "ExportResult"),
    # the ledger
    "open_ledger": ("ledger_anchor.opening", "open_ledger"),
    "LedgerClient": ("ledger_anchor.client", "LedgerClient"),
    "verify_ledger": ("settlechain.ledger", "verify_ledger"),
    "VerificationReport": ("ledger_anchor.verify", "VerificationReport"),
    "generate_keypair": ("ledger_anchor.sm2", "generate_keypair"),
    "load_private_key": ("ledger_anchor.sm2", "load_private_key"),
    "save_private_key": ("ledger_anchor.sm2", "save_private_key"),
    "PrivateKey": ("ledger_anchor.sm2", "PrivateKey"),
    # governance
    "rules_in_force": ("governance.rules", "rules_in_force"),
    "RulePackage": ("governance.rules", "RulePackage"),
    "propose": ("governance.api", "propose"),
    "vote": ("governance.api", "vote"),
    "governance_status": ("governance.api", "status"),
    "inspect_proposal": ("governance.api", "inspect"),
    "certify": ("governance.api", "certify"),
    "request_statement_approval": ("governance.api", "request_statement_approval"),
    "sign_approval": ("governance.api", "sign_approval"),
    "approvals": ("governance.api", "approvals"),
    "statement_approval": ("governance.api", "statement_approval"),
    "StatementApproval": ("governance.api", "StatementApproval"),
}

__all__ = [  # static, so that type checkers see the re-exports (a test checks it is complete)
    "ERRORS", "Anchor", "BillingError", "DataGenError", "ExportResult", "GeneratedData",
    "GovernanceError", "HelperOutputs", "HelperSummary", "IngestResult", "InputError",
    "JobError", "JsonFormatter", "LedgerClient", "LedgerError", "LocalJob", "LocalJobResult",
    "NotInForce", "OperatorOutputs", "PlainResult", "PrivateKey", "ProtocolError",
    "RulePackage", "Rules", "RulesError", "SettlechainError", "StageTiming", "Statement",
    "StatementApproval", "Status", "Summary", "VerificationReport", "__version__", "approvals",
    "certify", "generate_data", "generate_keypair", "governance_status", "inspect_proposal",
    "load_private_key", "load_rules", "open_ledger", "propose", "read_helper_outputs",
    "read_operator_outputs", "read_outputs", "reconcile_plain", "request_statement_approval",
    "rules_in_force", "run_local_job", "run_party", "save_private_key", "sign_approval",
    "statement_approval", "validate", "verify_ledger", "vote",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("settlechain")
        except PackageNotFoundError:  # run from a source tree without installing
            return "0+unknown"
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'settlechain' has no attribute {name!r}")
    module, attribute = found
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
