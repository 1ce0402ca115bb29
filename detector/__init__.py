"""Littering and clean-up act detector for fixed cameras."""

__version__ = "0.1.0"
