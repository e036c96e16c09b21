"""System objects (LTI, LTV), discretization and the python-control bridge."""
