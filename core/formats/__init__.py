"""Import and export of other formats: Who&When JSON, TracerTraj rows, OpenInference spans."""
