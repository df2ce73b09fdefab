"""Transfer protocols, one per module, each given the model it acts on (as lightly's
benchmarking modules are): how a downstream model's encoder and head learn, or how its
encoder is scored without learning.

* :mod:`.linear`: the encoder frozen, the head alone learns; a linear classifier is solved
  to convergence by L-BFGS on the frozen features (or trained by SGD);
* :mod:`.finetune`: everything learns, the encoder at a scaled learning rate; the head may
  start from the solved probe (LP-FT) and the encoder's BatchNorm statistics may stay fixed;
* :mod:`.knn`: retrieval by the encoder's features as it starts, no training.

:data:`TRAINING_PROTOCOLS` are the values of a downstream model's ``protocol`` argument,
:data:`ENCODER_PROTOCOLS` those of a task's ``encoder_protocols``;
:func:`make_protocol` builds one from the model's arguments.
"""

from __future__ import annotations

from typing import Any

from ultrassl.downstream.protocols.finetune import FineTune
from ultrassl.downstream.protocols.knn import KNNRetrieval
from ultrassl.downstream.protocols.linear import LinearProbe

#: protocols that train a downstream model, by the name its ``protocol`` argument takes
TRAINING_PROTOCOLS = {"linear": LinearProbe, "finetune": FineTune}
#: protocols that score an encoder as it starts, without training (a task's ``encoder_protocols``)
ENCODER_PROTOCOLS = {"knn": KNNRetrieval}


def make_protocol(name: str, **options: Any) -> LinearProbe | FineTune:
    """The training protocol ``name`` with the options it takes (others are ignored: a
    model's arguments cover both protocols)."""
    if name not in TRAINING_PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(map(repr, TRAINING_PROTOCOLS))}, got {name!r}")
    protocol = TRAINING_PROTOCOLS[name]
    return protocol(**{k: v for k, v in options.items() if k in protocol.OPTIONS})
