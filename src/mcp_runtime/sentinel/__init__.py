"""sentinel package."""
