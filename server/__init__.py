"""charcode.server: the pygls language server."""
