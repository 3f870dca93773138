"""The command line, the workers, the probe and deploy/, as a user runs them."""
