"""Pure functions of systems: spectra, responses, norms, DSF."""
