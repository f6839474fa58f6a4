"""The design layer: what to run next.

Every planner has one shape, :func:`propose` ``(study, budget, policy) -> Batch``: the
candidates to run next, each with a score and the reason it was chosen.

Planners (``kind``):

``"screen"``
    which candidates to measure so that the rest can be predicted, with a certified stop
    (:mod:`.screen`; Inference Set Design).
``"hits"``
    which candidates to screen next to find the most hits (:mod:`.hits`; linear bandits,
    GP-UCB, prior-guided nearest neighbour).
``"knockout"``
    which genes to knock out next to learn the regulatory graph (:mod:`.knockout`;
    expected information gain over the GRN posterior samples).
``"pairs"``
    the next double perturbations (:func:`workbench.tools.pair_planning.plan_pairs`).

The campaign simulators (:func:`.screen.screen_campaign`, :func:`.hits.hit_campaign`,
:func:`.knockout_campaign.knockout_campaign`)
replay a policy on a fully measured table, so its behaviour is known before spending.
"""

from workbench.tools.design.propose import Batch, propose

__all__ = ["Batch", "propose"]
