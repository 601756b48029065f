"""One module per `build.py` subcommand; the registry is `builder.cli.COMMANDS`."""
