"""Evidence of a run without secrets: records, redaction, keyed fingerprints and the leak scan.

`EvidenceWriter` appends `meshbook.evidence/v1` records to evidence.jsonl with every string redacted;
`Redactor` (one per process: `default_redactor()`) knows the secret values code has learned and every
common encoding of them; `fingerprint` proves a delivered value equals Vault's without storing it; and
`scan_for_leaks` checks a finished run directory for any known value, which `scrub` can then remove.
Each record kind has one typed model (`records`, `payloads`): the writer validates and serialises with
it, `read_checked_evidence` parses lines into it, and `docs/evidence-schema.json` is generated from it.
Each name loads its module on first use (`meshbook.lazy_names`): the redactor alone needs no pydantic.
"""

from typing import TYPE_CHECKING

from meshbook.lazy_names import lazy_names

if TYPE_CHECKING:
    from meshbook.evidence.encodings import encoded_forms
    from meshbook.evidence.exceptions import RedactedException
    from meshbook.evidence.fingerprints import fingerprint, fingerprint_key, fingerprint_key_path
    from meshbook.evidence.hooks import install_exception_hook, install_logging_filter
    from meshbook.evidence.leakscan import (
        Leak,
        ScanCoverage,
        ScanResult,
        ScrubReport,
        scan_directory,
        scan_for_leaks,
        scrub,
    )
    from meshbook.evidence.payloads import Kind, RecordOutcome
    from meshbook.evidence.reader import (
        CheckedEvidence,
        EvidenceFile,
        TruncatedEvidenceWarning,
        load_evidence,
        read_checked_evidence,
        read_evidence,
    )
    from meshbook.evidence.records import SCHEMA, AnyRecord, EvidenceRecord, check_record
    from meshbook.evidence.redaction import Redactor, default_redactor
    from meshbook.evidence.schema import evidence_schema
    from meshbook.evidence.writer import EvidenceWriter

__getattr__ = lazy_names(
    __name__,
    {
        "encodings": ("encoded_forms",),
        "exceptions": ("RedactedException",),
        "fingerprints": ("fingerprint", "fingerprint_key", "fingerprint_key_path"),
        "hooks": ("install_exception_hook", "install_logging_filter"),
        "leakscan": ("Leak", "ScanCoverage", "ScanResult", "ScrubReport", "scan_directory", "scan_for_leaks", "scrub"),
        "payloads": ("Kind", "RecordOutcome"),
        "reader": (
            "CheckedEvidence",
            "EvidenceFile",
            "TruncatedEvidenceWarning",
            "load_evidence",
            "read_checked_evidence",
            "read_evidence",
        ),
        "records": ("SCHEMA", "AnyRecord", "EvidenceRecord", "check_record"),
        "redaction": ("Redactor", "default_redactor"),
        "schema": ("evidence_schema",),
        "writer": ("EvidenceWriter",),
    },
)

__all__ = [
    "SCHEMA",
    "AnyRecord",
    "CheckedEvidence",
    "EvidenceFile",
    "EvidenceRecord",
    "EvidenceWriter",
    "Kind",
    "Leak",
    "RecordOutcome",
    "RedactedException",
    "Redactor",
    "ScanCoverage",
    "ScanResult",
    "ScrubReport",
    "TruncatedEvidenceWarning",
    "check_record",
    "default_redactor",
    "encoded_forms",
    "evidence_schema",
    "fingerprint",
    "fingerprint_key",
    "fingerprint_key_path",
    "install_exception_hook",
    "install_logging_filter",
    "load_evidence",
    "read_checked_evidence",
    "read_evidence",
    "scan_directory",
    "scan_for_leaks",
    "scrub",
]
