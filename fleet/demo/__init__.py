"""The demo that `make run` starts: simulated miners (`miners.sim`) paired into the demo org.

``plan`` turns a simulator inventory into miners for the demo sites (pure), ``launcher`` is
``python -m fleet.demo``: it starts the simulators, pairs them, runs the server and stops
everything when the server stops.
"""
