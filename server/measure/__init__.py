"""charcode.server.measure: what a user feels, measured on the core (`charcode eval`)."""
