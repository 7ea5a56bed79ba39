"""Every pure loss of distill in one home (no modules, no state), torchtune ``kd_losses`` style.

* :mod:`distill.losses.tokens`: the students' token-level objective (``IGNORE_INDEX``, per-example
  and per-sequence NLL, masked mean, completion mask);
* :mod:`distill.losses.peer`: peer teaching (ensemble KL/NLL, sequence mixture NLL, contrastive
  hidden states, ULD);
* :mod:`distill.losses.routing`: the CoT router's balance terms (entropy, coverage) and expected routing cost.

Import from here (``from distill.losses import IGNORE_INDEX, per_example_nll``).
"""

from distill.losses.peer import (contrastive_hidden, ensemble_kl, ensemble_nll, sequence_mixture_nll,
                                 uld_distance)
from distill.losses.routing import balance_loss, coverage_loss, expected_cost, routing_cost, standardise
from distill.losses.tokens import IGNORE_INDEX, completion_mask, masked_mean, per_example_nll, sequence_nll

__all__ = [
    "IGNORE_INDEX",
    "balance_loss",
    "completion_mask",
    "coverage_loss",
    "contrastive_hidden",
    "ensemble_kl",
    "ensemble_nll",
    "expected_cost",
    "masked_mean",
    "per_example_nll",
    "routing_cost",
    "sequence_mixture_nll",
    "sequence_nll",
    "standardise",
    "uld_distance",
]
