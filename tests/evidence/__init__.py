"""Tests of the evidence layer: records, redaction, fingerprints and the leak scan."""
