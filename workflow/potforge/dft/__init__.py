"""DFT labelling with GPAW: protocol, one single point per worker process, the failure ladder."""
