"""The demo (``cryoensemble demo``): a simulated dataset and an ensemble optimisation on the bundled
adenylate kinase models."""
