"""Shared helpers: user-facing errors, downloads with hash checks, atomic file writes, checkpoints."""
