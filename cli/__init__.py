"""The command line: parses arguments, shows progress, calls the stages."""
