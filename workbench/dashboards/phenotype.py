"""The phenotype of a search, as the dashboards show it.

The find step (:mod:`workbench.tools.find`; Exemplar Guided Active Learning, Hartford et
al. 2020) keeps one search in the Study's ``phenotype_search`` artefact: one row per crop
of ``profiles`` with its answer and the phenotype classifier's score, and under
``uns["workbench"]`` the exemplars and the perturbations enriched for the phenotype.
This module turns that artefact into what the views need:

* :func:`sample_scores`, one score per crop id (joined to a map by id, never by row
  position: the search's rows need not be in the order of the profiles);
* :func:`perturbation_scores`, per perturbation the mean score of its crops and the
  fraction of them called positive (the answer where a person gave one, else score
  >= 0.5, the exemplars positive: the calls the find step's enrichment counts);
* :func:`enriched_for`, the enriched perturbations that hold a gene.

The enrichment's q-values come from a Fisher test that treats crops as independent;
their level was checked only under shuffled labels, not under well or batch effects
(docs/methods/find.md), so the views show them as a ranking score, labelled as one
(:data:`SCORE_NOTE`), never as a q-value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ARTEFACT = "phenotype_search"
#: A perturbation counts as enriched below this ranking score (BH q of the one-sided
#: Fisher test).
ALPHA = 0.05
SCORE_NOTE = ("ranking score, not a checked q-value: BH q of a Fisher test that treats "
              "crops as independent")
#: Colour choices the embedding view offers when the Study holds a search.
SCORE = "phenotype score"
FRACTION = "phenotype positive fraction"


def has_search(study) -> bool:
    """Whether the Study holds a phenotype search.

    Parameters
    ----------
    study : Study
        The open Study.

    Returns
    -------
    bool
        True when the :data:`ARTEFACT` artefact exists.
    """
    return study.has(ARTEFACT)


def search_name(study) -> str:
    """A short name of the search: its exemplar crop ids (``search from c000012 +2``).

    Parameters
    ----------
    study : Study
        A Study with a phenotype search.

    Returns
    -------
    str
        The first exemplar's id and how many more there are, or ``"search"`` when the
        search has no exemplars; cached per artefact version.
    """
    from workbench.dashboards.cache import cached

    def _name(study):
        ex = [str(e) for e in study.read_uns(ARTEFACT, "exemplars")]
        more = f" +{len(ex) - 1}" if len(ex) > 1 else ""
        return f"search from {ex[0]}{more}" if ex else "search"

    return cached(study, [ARTEFACT], "phenotype-name", _name)


def color_label(study, what: str = SCORE) -> str:
    """The colour choice's text, e.g. ``phenotype score (search from c000012)``.

    Parameters
    ----------
    study : Study
        A Study with a phenotype search.
    what : str
        :data:`SCORE` or :data:`FRACTION`.

    Returns
    -------
    str
        ``what`` followed by :func:`search_name` in brackets.
    """
    return f"{what} ({search_name(study)})"


def _calls(study) -> pd.DataFrame:
    obs = study.read_obs(ARTEFACT)
    answer = obs["answer"].astype(str).to_numpy()
    score = obs["score"].to_numpy(float)
    positive = np.where(answer == "yes", True, np.where(answer == "no", False, score >= 0.5))
    ids = obs.index.astype(str)
    positive[ids.isin([str(e) for e in study.read_uns(ARTEFACT, "exemplars")])] = True
    return pd.DataFrame({"score": score, "positive": positive.astype(bool),
                         "answer": answer, "perturbation": obs["perturbation"].astype(str)
                         .to_numpy()}, index=pd.Index(ids, name="id"))


def sample_scores(study) -> pd.DataFrame:
    """Per crop id of the search: ``score``, ``positive`` (its call), ``answer`` and
    ``perturbation``. Read once per artefact version; callers must not mutate it.

    Parameters
    ----------
    study : Study
        A Study with a phenotype search.

    Returns
    -------
    pandas.DataFrame
        Indexed by crop id. ``positive`` is the answer where a person gave one (``yes`` /
        ``no``), else ``score >= 0.5``; exemplars are positive.
    """
    from workbench.dashboards.cache import cached

    return cached(study, [ARTEFACT], "phenotype-samples", _calls)


def perturbation_scores(study) -> pd.DataFrame:
    """Per perturbation of the search: ``mean_score``, ``positive_fraction``, ``n_crops``.

    Parameters
    ----------
    study : Study
        A Study with a phenotype search.

    Returns
    -------
    pandas.DataFrame
        Indexed by perturbation: the mean score of its crops, the fraction called positive
        (:func:`sample_scores`) and the number of crops; cached per artefact version.
    """
    from workbench.dashboards.cache import cached

    def _agg(study):
        g = sample_scores(study).groupby("perturbation", observed=True)
        return pd.DataFrame({"mean_score": g["score"].mean(),
                             "positive_fraction": g["positive"].mean(),
                             "n_crops": g.size()})

    return cached(study, [ARTEFACT], "phenotype-perturbations", _agg)


def scores_for(study, ids, level: str, what: str = SCORE) -> np.ndarray:
    """The colour values of a map's points, in the order of ``ids`` (crop ids for
    ``level="samples"``, perturbation names for ``"perturbations"``); NaN where the
    search holds no value for a point (drawn grey).

    Parameters
    ----------
    study : Study
        A Study with a phenotype search.
    ids : sequence of str
        The map's point ids.
    level : str
        ``"samples"`` (crop ids) or anything else for perturbation names.
    what : str
        :data:`SCORE` (the score, or the mean score) or any other value for the positive
        call (or the positive fraction).

    Returns
    -------
    numpy.ndarray
        Float values, one per id.
    """
    ids = pd.Index(pd.Series(ids).astype(str))
    if level == "samples":
        col = "score" if what == SCORE else "positive"
        return sample_scores(study)[col].astype(float).reindex(ids).to_numpy()
    col = "mean_score" if what == SCORE else "positive_fraction"
    return perturbation_scores(study)[col].astype(float).reindex(ids).to_numpy()


def _involves(name: str, gene: str) -> bool:
    return name == gene or gene in str(name).split("+")


def enriched_for(study, gene: str) -> pd.DataFrame:
    """The search's enrichment rows (``perturbation``, ``n_positive``, ``p``, ``q``) of the
    perturbations holding ``gene`` whose ranking score lies below :data:`ALPHA` (the test is
    one-sided: more positive crops than the screen-wide rate), with ``n_crops``.

    Parameters
    ----------
    study : Study
        A Study with a phenotype search.
    gene : str
        The gene; a perturbation holds it when it is named so or is a combination
        (``"A+B"``) that includes it.

    Returns
    -------
    pandas.DataFrame
        The enrichment rows, lowest ranking score (``q``) first, with ``n_crops`` (crops of
        the perturbation in the search).
    """
    enr = study.read_uns(ARTEFACT, "enrichment")
    if not len(enr):
        return enr.assign(n_crops=pd.Series(dtype=int))
    mine = enr[enr["perturbation"].astype(str).map(lambda p: _involves(p, gene)).to_numpy(bool)]
    mine = mine[mine["q"].astype(float).to_numpy() < ALPHA]
    sizes = sample_scores(study)["perturbation"].value_counts()
    return mine.assign(n_crops=sizes.reindex(mine["perturbation"].astype(str)).fillna(0)
                       .astype(int).to_numpy()).sort_values("q")
