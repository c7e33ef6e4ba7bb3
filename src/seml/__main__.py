from seml.cli import entry

entry()
