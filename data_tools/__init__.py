"""Command-line data tools: index folders into manifests, generate the simulated data sets."""
