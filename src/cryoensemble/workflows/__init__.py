"""Workflows: the user-level jobs (simulate a dataset, render a map, reweight an ensemble, optimise
an ensemble, search poses, the demo). Each owns its configuration, its run function and its
outputs (writers, plots, reports); the physics stays in the stage packages below.
"""
