"""charcode.server: runs models: the inference core (core/), the language server, the commands that use models."""
