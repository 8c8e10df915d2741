"""Command-line options: base, train and test option sets."""
