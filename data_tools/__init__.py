"""Command-line data tools: ``ultrassl data index`` (folders into manifests) and ``ultrassl data synth``
(the simulated data sets), over :mod:`ultrassl.data.indexing` and :mod:`ultrassl.synth`."""
