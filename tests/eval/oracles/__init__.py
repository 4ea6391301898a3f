"""TEST ORACLES -- not part of the library, never imported by it.

Each module is a literal port of one official evaluation file (named, with its repository and commit,
in the module's docstring), changed only where noted there (Python 3, no file I/O, no printing, no
GPT calls). tests/eval/test_scorers_differential.py checks our scorers against them on thousands of
generated inputs.
"""
