"""Command-line interface. Commands only parse options, call the library and print."""
