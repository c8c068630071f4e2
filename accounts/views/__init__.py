"""Pages. Reads go through ``restrict()`` in the switcher's org; writes go through services.

An htmx request gets back the fragment it changed (messages ride along out of band); a plain
form post gets a redirect, or the whole page when it has to show form errors or a one-time secret.
"""
