"""Compiler passes, one per file; :mod:`convc.pipeline` runs them in order."""
