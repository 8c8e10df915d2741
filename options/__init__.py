"""Command-line options: base, train and test option sets (spec section 2)."""
