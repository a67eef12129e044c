"""Istio: install, injection, PeerAuthentication, mTLS posture and the connectivity model."""
