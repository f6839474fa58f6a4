"""The ``find`` step: "find more cells like this one", kept as a search session in the Study.

A person names exemplar crops of a phenotype; the step draws candidate crops around them in
the Study's embedding (:mod:`workbench.models.guided_search`), asks an *oracle* for yes/no
answers, and after every batch updates the prevalence interval and the stop status
(``confirmed_common`` / ``certified_rare`` / ``open`` against the user's ``tau``). The
session is the ``phenotype_search`` artefact: one row per crop of ``profiles`` with its
answer (``yes``/``no``/empty), the classifier's score and the perturbation; under
``uns["workbench"]`` the exemplars, every draw with its probability, the interval per
round, the status, the settings and the perturbations enriched for the phenotype. Running
the step again with the same exemplars continues from the kept answers.

Oracles: anything callable as ``oracle(crop_ids) -> answers`` (a person in napari or a
notebook), or :func:`label_column_oracle` for a column the data carries (the demo's
simulator truth, a genotype, an MOA).

Enrichment. Each crop is called positive by its answer when it has one, otherwise by the
classifier (score >= 0.5); each perturbation's positives are compared with all other crops
by a one-sided Fisher exact test, with Benjamini-Hochberg q-values. The test treats crops as
independent draws: crops of one well share its effects, so treat q as a ranking aid when
the positives cluster by well (the benchmark reports its level under shuffled labels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from workbench.errors import MissingArtefactError, ValidationError
from workbench.models.guided_search import POLICIES, PhenotypeClassifier, PhenotypeSearch

__all__ = ["FindSession", "run_find", "label_column_oracle", "enrichment_table"]

ARTEFACT = "phenotype_search"
Oracle = Callable[[Sequence[str]], Sequence[bool]]


def _embedding(adata, key: str | None) -> tuple[np.ndarray, str]:
    if key is None:
        if adata.n_vars:
            return np.asarray(adata.X, float), "X"
        keys = sorted(k for k in adata.obsm if k.startswith("X_"))
        if not keys:
            raise MissingArtefactError(
                "the Study's profiles hold no embedding (X has no columns and obsm has no "
                "X_* matrix): there is nothing to measure similarity in.",
                "run `workbench embed STUDY` first, or import profiles with features.")
        key = keys[-1]
    if key == "X":
        return np.asarray(adata.X, float), "X"
    if key not in adata.obsm:
        raise ValidationError(f"profiles have no embedding {key!r} (obsm holds "
                              f"{sorted(adata.obsm)}).", "name one of those, or 'X'.")
    return np.asarray(adata.obsm[key], float), key


def _check_tau(tau, delta) -> None:
    for name, v in (("tau", tau), ("delta", delta)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValidationError(f"{name}={v!r} must lie strictly between 0 and 1.",
                                  f"give {name} as a fraction, e.g. 0.01 for 1 %.")


def label_column_oracle(obs: pd.DataFrame, column: str, positive=None,
                        exemplars: Sequence[str] = ()) -> Oracle:
    """An oracle answering from ``obs[column]``: yes where the value equals ``positive``
    (default: the exemplars' value, which must then be one).

    Parameters
    ----------
    obs : pandas.DataFrame
        The profiles' obs, indexed by crop id.
    column : str
        The column to answer from.
    positive : object, optional
        The value that means yes (compared as a string).
    exemplars : sequence of str
        Exemplar crop ids; their single value is the default ``positive``.

    Returns
    -------
    callable
        ``oracle(crop_ids) -> numpy.ndarray of bool``.
    """
    if column not in obs.columns:
        raise ValidationError(f"the profiles have no column {column!r} to answer from.",
                              f"use one of {list(obs.columns)}.")
    col = obs[column].astype(str)
    if positive is None:
        vals = sorted(set(col.loc[list(exemplars)]))
        if len(vals) != 1:
            raise ValidationError(
                f"the exemplars have {len(vals)} values of {column!r} ({vals}); which one "
                "is the phenotype?", "give the positive value (--positive VALUE).")
        positive = vals[0]
    positive = str(positive)
    if not (col == positive).any():
        raise ValidationError(f"no crop has {column} == {positive!r}.",
                              f"give a value that occurs in the column {column!r}.")
    return lambda ids: (col.loc[list(ids)] == positive).to_numpy()


def enrichment_table(perturbation: pd.Series, positive: np.ndarray) -> pd.DataFrame:
    """Per perturbation: crops, positives, expected positives, odds ratio, Fisher p, BH q.

    The p-value is a one-sided Fisher exact test of the perturbation's crops against all
    other crops; it treats crops as independent.

    Parameters
    ----------
    perturbation : pandas.Series
        The perturbation of each crop.
    positive : array_like of bool
        Whether each crop is called positive.

    Returns
    -------
    pandas.DataFrame
        ``perturbation``, ``n_crops``, ``n_positive``, ``expected``, ``odds_ratio``, ``p``,
        ``q``, sorted by q.
    """
    from scipy.stats import fisher_exact

    pert = perturbation.astype(str).to_numpy()
    positive = np.asarray(positive, bool)
    total, n_pos = len(pert), int(positive.sum())
    rows = []
    for p in sorted(set(pert)):
        inside = pert == p
        a = int((positive & inside).sum())
        b = int(inside.sum()) - a
        c, d = n_pos - a, total - n_pos - b
        odds, pval = fisher_exact([[a, b], [c, d]], alternative="greater")
        rows.append({"perturbation": p, "n_crops": int(inside.sum()), "n_positive": a,
                     "expected": inside.sum() * n_pos / max(total, 1),
                     "odds_ratio": float(odds), "p": float(pval)})
    df = pd.DataFrame(rows)
    if len(df):
        from scipy.stats import false_discovery_control

        df["q"] = false_discovery_control(df["p"].to_numpy(), method="bh")
        df = df.sort_values(["q", "p", "n_positive"], ascending=[True, True, False])
    return df.reset_index(drop=True)


class FindSession:
    """One search session over a Study's crops; :meth:`save` writes it into the Study.

    Open it with :meth:`open` (it resumes the kept session when the exemplars match),
    ask :meth:`next_batch` for crops to show, give the answers to :meth:`record`.

    Parameters
    ----------
    study : Study
        The Study searched.
    search : PhenotypeSearch
        The search over the profiles' embedding.
    crop_ids : pandas.Index
        The crop id of each row of the embedding.
    obs : pandas.DataFrame
        The profiles' obs.
    settings : dict
        The search settings recorded in provenance.
    rounds : list of dict
        The summaries of the rounds so far.
    """

    def __init__(self, study, search: PhenotypeSearch, crop_ids: pd.Index,
                 obs: pd.DataFrame, settings: dict, rounds: list[dict]):
        self.study, self.search, self.crop_ids = study, search, crop_ids
        self.obs, self.settings, self.rounds = obs, settings, rounds
        self.classifier = PhenotypeClassifier()
        self._fit()

    # ------------------------------------------------------------------ open / resume
    @classmethod
    def open(cls, study, exemplars: Sequence[str], *, tau: float = 0.01, delta: float = 0.05,
             batch: int = 20, policy: str = "guided", seed: int = 0,
             embedding: str | None = None, restart: bool = False) -> FindSession:
        """Open a search on a Study's profiles, resuming the kept one when the exemplars match.

        Parameters
        ----------
        study : Study
            A Study with ``profiles``.
        exemplars : sequence of str
            Crop ids of the phenotype.
        tau : float
            Prevalence threshold, in (0, 1).
        delta : float
            Error probability of the interval, in (0, 1).
        batch : int
            Crops drawn per round.
        policy : str
            One of :data:`~workbench.models.guided_search.POLICIES`.
        seed : int
            Seed of the draws.
        embedding : str, optional
            ``"X"`` or an obsm key of the profiles.
        restart : bool
            Start afresh, ignoring a kept search (saving then replaces it).

        Returns
        -------
        FindSession
            The session, with the kept answers restored.
        """
        _check_tau(tau, delta)
        if policy not in POLICIES:
            raise ValidationError(f"unknown search policy {policy!r}.",
                                  f"use one of {', '.join(POLICIES)}.")
        if isinstance(batch, bool) or int(batch) != batch or batch < 1:
            raise ValidationError(f"batch={batch!r} must be a whole number >= 1.",
                                  "give the number of crops to show per round.")
        exemplars = [str(e) for e in exemplars]
        if not exemplars:
            raise ValidationError("no exemplar crop was given.",
                                  "name at least one crop id (--exemplar CROP_ID).")
        study.require("profiles", why="the search draws crops by their embedding")
        adata = study.read("profiles")
        X, key = _embedding(adata, embedding)
        ids = pd.Index(adata.obs_names.astype(str))
        missing = [e for e in exemplars if e not in ids]
        if missing:
            raise ValidationError(
                f"exemplar crop id(s) {missing} are not in the Study's profiles "
                f"({len(ids)} crops, e.g. {list(ids[:3])}).",
                "give ids of the profiles' rows (the crop ids napari and `workbench info` "
                "show).")
        ex_idx = [int(ids.get_loc(e)) for e in exemplars]
        search = PhenotypeSearch(X, ex_idx, tau=tau, delta=delta, batch=int(batch),
                                 policy=policy, seed=seed)
        settings = {"policy": policy, "tau": float(tau), "delta": float(delta),
                    "batch": int(batch), "seed": int(seed), "embedding": key,
                    "floor": search.floor, "min_ess": search.min_ess,
                    "epsilon": search.epsilon, "bandwidth": float(search.sigma_)}
        rounds: list[dict] = []
        if study.has(ARTEFACT) and not restart:
            kept = study.read(ARTEFACT)
            wb = kept.uns["workbench"]
            if sorted(map(str, wb["exemplars"])) != sorted(exemplars):
                raise ValidationError(
                    f"the Study keeps a search around other exemplars "
                    f"({list(map(str, wb['exemplars']))}).",
                    "give the same exemplars to continue it, or restart=True (--restart) "
                    "to replace it with a new search.")
            if list(kept.obs_names.astype(str)) != list(ids):
                raise ValidationError("the kept search was made on other profiles.",
                                      "restart the search (--restart).")
            cls._restore(search, kept, ids)
            rounds = wb["rounds"].to_dict("records") if len(wb["rounds"]) else []
        return cls(study, search, ids, adata.obs, settings, rounds)

    @staticmethod
    def _restore(search: PhenotypeSearch, kept, ids: pd.Index) -> None:
        st = search.state
        draws = kept.uns["workbench"]["draws"]
        st.item = [int(ids.get_loc(str(c))) for c in draws["crop_id"]]
        st.prob = [float(v) for v in draws["probability"]]
        st.range = [float(v) for v in draws["range"]]
        st.round = [int(v) for v in draws["round"]]
        st.policy = [str(v) for v in draws["policy"]]
        answer = kept.obs["answer"].astype(str).to_numpy()
        exemplars = set(search.exemplars)
        for i in np.flatnonzero(answer != ""):
            if int(i) not in exemplars or int(i) in st.item:
                st.labels[int(i)] = answer[i] == "yes"

    # ------------------------------------------------------------------ the loop
    def next_batch(self) -> list[str]:
        """Crop ids to show next (a crop drawn twice appears once; its answer is kept).

        Returns
        -------
        list of str
            Crop ids not yet answered.
        """
        self._pending = self.search.propose(self.classifier if self.status != "open"
                                            or self.search.policy == "least_confidence"
                                            else None)
        seen, out = set(), []
        for i in self._pending:
            if i not in seen and int(i) not in self.search.state.labels:
                seen.add(i)
                out.append(str(self.crop_ids[i]))
        return out

    def record(self, answers: dict[str, bool] | Sequence[bool],
               crop_ids: Sequence[str] | None = None) -> dict:
        """Record answers to the last :meth:`next_batch` (a dict id -> yes/no, or a list in
        its order); returns the round's summary.

        Parameters
        ----------
        answers : dict or sequence of bool
            Crop id -> yes/no, or one answer per id of the last batch.
        crop_ids : sequence of str, optional
            The ids a list of answers refers to (default: the batch's).

        Returns
        -------
        dict
            ``round``, ``labels``, ``draws``, ``positives``, ``estimate``, ``lower``,
            ``upper``, ``status``.
        """
        items = getattr(self, "_pending", None)
        if items is None:
            raise ValidationError("no batch was proposed to answer.", "call next_batch first.")
        if not isinstance(answers, dict):
            ids = list(crop_ids) if crop_ids is not None else self._ask_ids()
            answers = dict(zip(ids, answers))
        known = self.search.state.labels
        labels = []
        for i in items:
            cid = str(self.crop_ids[i])
            if int(i) in known:
                labels.append(known[int(i)])
            elif cid in answers:
                labels.append(bool(answers[cid]))
            else:
                raise ValidationError(f"no answer for crop {cid!r} of the batch.",
                                      "answer every crop shown (yes or no).")
        self.search.record(items, labels)
        self._pending = None
        self._fit()
        lo, hi = self.search.interval()
        row = {"round": self.search.state.n_rounds, "labels": len(known),
               "draws": len(self.search.state.item),
               "positives": int(sum(known.values())), "estimate": self.search.estimate(),
               "lower": lo, "upper": hi, "status": self.search.status()}
        self.rounds.append(row)
        return row

    def _ask_ids(self) -> list[str]:
        seen, out = set(), []
        for i in self._pending:
            if i not in seen and int(i) not in self.search.state.labels:
                seen.add(i)
                out.append(str(self.crop_ids[i]))
        return out

    def _fit(self) -> None:
        idx, lab = self.search.labelled()
        self.classifier.fit(self.search.X[idx], lab)
        self.scores = self.classifier.scores(self.search.X)

    @property
    def status(self) -> str:
        return self.search.status()

    @property
    def interval(self) -> tuple[float, float]:
        return self.search.interval()

    def answers(self) -> pd.Series:
        """The answer of every crop: ``"yes"``, ``"no"`` or ``""``.

        Returns
        -------
        pandas.Series
            Indexed by crop id.
        """
        a = pd.Series("", index=self.crop_ids, dtype=object)
        for i, y in self.search.state.labels.items():
            a.iloc[i] = "yes" if y else "no"
        return a

    def positive_calls(self) -> np.ndarray:
        """Which crops are called positive: the answer where there is one, else the classifier.

        Exemplars are positive; unanswered crops are positive when their score is at least 0.5.

        Returns
        -------
        numpy.ndarray of bool
            One call per crop.
        """
        call = self.scores >= 0.5
        for i, y in self.search.state.labels.items():
            call[i] = y
        call[self.search.exemplars] = True
        return call

    def enrichment(self) -> pd.DataFrame:
        """The perturbations enriched for the phenotype (:func:`enrichment_table`).

        Returns
        -------
        pandas.DataFrame
            One row per perturbation, sorted by q.
        """
        return enrichment_table(self.obs["perturbation"], self.positive_calls())

    def top_crops(self, n: int = 12) -> list[str]:
        """The crops the classifier scores highest.

        Parameters
        ----------
        n : int
            How many.

        Returns
        -------
        list of str
            Crop ids, best first.
        """
        return [str(self.crop_ids[i]) for i in np.argsort(-self.scores, kind="stable")[:n]]

    # ------------------------------------------------------------------ saving
    def save(self, *, oracle: str = "person") -> None:
        """Write the session into the Study (the ``phenotype_search`` artefact).

        Parameters
        ----------
        oracle : str
            Who answered, recorded in the settings (``"person"``, a column, a callback name).
        """
        import anndata as ad

        st = self.search.state
        obs = pd.DataFrame({"answer": self.answers().to_numpy().astype(str),
                            "score": self.scores.astype(float),
                            "perturbation": self.obs["perturbation"].astype(str).to_numpy()},
                           index=self.crop_ids)
        draws = pd.DataFrame({"round": np.asarray(st.round, int),
                              "crop_id": [str(self.crop_ids[i]) for i in st.item],
                              "probability": np.asarray(st.prob, float),
                              "range": np.asarray(st.range, float),
                              "policy": np.asarray(st.policy, str)})
        cols = ["round", "labels", "draws", "positives", "estimate", "lower", "upper", "status"]
        rounds = pd.DataFrame(self.rounds, columns=cols)
        lo, hi = self.interval
        wb = {"exemplars": [str(self.crop_ids[e]) for e in self.search.exemplars],
              "status": self.status, "lower": float(lo), "upper": float(hi),
              "estimate": float(np.nan_to_num(self.search.estimate(), nan=-1.0)),
              "settings": dict(self.settings, oracle=oracle), "rounds": rounds,
              "draws": draws, "enrichment": self.enrichment(),
              "top_crops": self.top_crops()}
        adata = ad.AnnData(obs=obs, uns={"workbench": wb})
        inputs = ["profiles"] + ([ARTEFACT] if self.study.has(ARTEFACT) else [])
        with self.study.step("find", params=dict(self.settings, oracle=oracle,
                                                 exemplars=wb["exemplars"]),
                             seed=self.settings["seed"], inputs=inputs,
                             outputs=[ARTEFACT]) as tx:
            tx.write_anndata(ARTEFACT, adata, screen=False)


def run_find(study, exemplars: Sequence[str], *, tau: float = 0.01,
             oracle: Oracle | None = None, label_column: str | None = None, positive=None,
             batch: int = 20, budget: int = 200, delta: float = 0.05,
             policy: str = "guided", seed: int = 0, embedding: str | None = None,
             restart: bool = False) -> FindSession:
    """Run search rounds until the status is decided or ``budget`` new answers were given,
    then save the session. Give ``oracle`` (a callable) or ``label_column``.

    Parameters
    ----------
    study : Study
        A Study with ``profiles``.
    exemplars : sequence of str
        Crop ids of the phenotype.
    tau : float
        Prevalence threshold, in (0, 1): the search confirms the phenotype as common above it
        or certifies it rare below it.
    oracle : callable, optional
        ``oracle(crop_ids) -> answers`` (yes/no per crop).
    label_column : str, optional
        Answer from this obs column instead (:func:`label_column_oracle`).
    positive : object, optional
        The value of ``label_column`` that means yes.
    batch : int
        Crops drawn per round.
    budget : int
        Most new answers asked for.
    delta : float
        Error probability of the prevalence interval, in (0, 1).
    policy : str
        One of :data:`~workbench.models.guided_search.POLICIES`.
    seed : int
        Seed of the draws.
    embedding : str, optional
        ``"X"`` or an obsm key of the profiles (default: ``X`` when it has columns, else the
        last ``X_*`` obsm key).
    restart : bool
        Replace a kept search instead of continuing it.

    Returns
    -------
    FindSession
        The saved session.
    """
    if isinstance(budget, bool) or int(budget) != budget or budget < 1:
        raise ValidationError(f"budget={budget!r} must be a whole number >= 1.",
                              "give the number of new answers to ask for (--budget N).")
    session = FindSession.open(study, exemplars, tau=tau, delta=delta, batch=batch,
                               policy=policy, seed=seed, embedding=embedding, restart=restart)
    if oracle is None:
        if label_column is None:
            raise ValidationError("no oracle: nobody answers the search's questions.",
                                  "give a label column (--label-column COL) or answer in "
                                  "napari (`workbench napari STUDY`).")
        oracle = label_column_oracle(session.obs, label_column, positive,
                                     [str(e) for e in exemplars])
        name = f"column {label_column}"
    else:
        name = getattr(oracle, "__name__", "callback")
    asked, rounds = 0, 0
    while session.status == "open" and asked < budget and rounds < 50 * budget:
        rounds += 1
        ids = session.next_batch()
        answers = list(oracle(ids)) if ids else []
        session.record(dict(zip(ids, answers)))
        asked += len(ids)
    session.save(oracle=name)
    return session
