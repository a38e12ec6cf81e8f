"""Compiler passes, one per file; :mod:`convc.compiler.pipeline` runs them in order."""
