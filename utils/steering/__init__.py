"""Steering (chapter 03): hooks that push the residual stream, the judges of what comes out, and the study.

Learner-facing helpers are re-exported here (``from utils import steering; steering.clamp_hook``):

* :mod:`utils.steering.hooks` — additive and SAE-clamp hooks, mean-difference vectors, residuals;
* :mod:`utils.steering.answers` — the shared decoding and batched question answering;
* :mod:`utils.steering.judges` — concept, sycophancy and fluency rules;
* :mod:`utils.steering.identity` — the chat setup that tells the model it is an AI, and who-am-I judges;
* :mod:`utils.steering.output_scores` — choosing latents by what they write;
* :mod:`utils.steering.prompts` — the everyday questions and the overconfident users;
* :mod:`utils.steering.study` — loading the precomputed sweep, intervals and the combined score;
* :mod:`utils.steering.panel` — the interactive panel.

The maintainer command that regenerates the sweep is ``python -m utils.steering.make_sweep``.
"""

from utils.steering.answers import MAX_NEW_TOKENS, REPETITION_PENALTY, answer, bridge_rate, steering_rate
from utils.steering.hooks import (additive_hook, clamp_hook, concept_latent_group, concept_vector, group_clamp_hook,
                                   mean_difference_vector, median_resid_norm, residuals, vector_hook)
from utils.steering.judges import (BRIDGE_PATTERN, PRAISE_WORDS, agrees_with_user, answer_alone_perplexity, answer_fluency,
                                   claims_bridge_identity, completion_perplexity, is_praise, mentions_bridge,
                                   mentions_golden_gate, perplexity, praise_count, repetition_rate)
from utils.steering.identity import claims_to_be_the_bridge
from utils.steering.output_scores import output_score
from utils.steering.study import rate_interval

__all__ = [
    "MAX_NEW_TOKENS", "REPETITION_PENALTY", "answer", "bridge_rate", "steering_rate", "additive_hook", "clamp_hook", "group_clamp_hook",
    "mean_difference_vector", "residuals", "vector_hook", "concept_latent_group", "concept_vector", "median_resid_norm", "answer_fluency", "BRIDGE_PATTERN", "PRAISE_WORDS", "agrees_with_user",
    "answer_alone_perplexity", "claims_bridge_identity", "completion_perplexity", "is_praise", "mentions_bridge",
    "mentions_golden_gate", "perplexity", "praise_count", "repetition_rate", "rate_interval", "claims_to_be_the_bridge",
    "output_score",
]
