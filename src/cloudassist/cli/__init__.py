"""The command line: `cloudassist server`, `cloudassist keys …`."""
