"""Training data: synthetic speech and face motion, and readers for real datasets."""
