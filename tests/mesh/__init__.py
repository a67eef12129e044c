"""Tests of the Istio layer."""
