"""charcode.server.core: running a model, with no pygls, lsprotocol or torch import.

The language server's features, the command line and the evaluation all call
this package; nothing in it knows about LSP.
"""
