"""The transfer benchmark: does pretraining with objective X help on task Y, by how much,
beyond noise? (``ultrassl benchmark``, README "Transfer benchmark").

* :mod:`.profile`: what a run does, read from ``configs/benchmark/*.yaml``;
* :mod:`.pools`: the simulated data, split by subject into pretrain, labelled and test pools,
  with nested label fractions;
* :mod:`.runner`: pretraining and every arm, through ``ultrassl fit`` and the task registry;
* :mod:`.store`: atomic records, resuming, refusing a folder of other settings;
* :mod:`.stats`: means, t-intervals and paired differences over seeds;
* :mod:`.report`, :mod:`.figures`: ``results.json``, ``results.md``, the checks, the plots;
* :mod:`.cli`: the command.
"""
