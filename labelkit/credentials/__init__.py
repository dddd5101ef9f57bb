"""C2PA Content Credentials: certificates, manifests, signing and reading (c2pa-python)."""

from __future__ import annotations
