"""Scoring backend: event intake, append-only zone ledger, grades, API (see app.create_app)."""
