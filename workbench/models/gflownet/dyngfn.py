"""The DynGFN estimator: train per-node GFlowNets on a velocity reward, then sample graphs.

Each training step (method card section 1.6):

1. roll out ``n_envs`` graphs with the tempered behaviour policy (all ``d`` node
   environments in parallel);
2. score every visited parent set with the reward (linear: closed-form ridge; hyper: the
   current hypernetwork on a mini-batch of cells);
3. take one Adam step on the detailed-balance (or trajectory-balance, or f-TB) loss;
4. for the hypernetwork variant, take ``hyper_steps`` Adam steps on its velocity MSE over
   graphs drawn on-policy from the current ``Q`` (the hypernetwork is trained on the
   posterior it is scoring, as in h-DynGFN).

Training checkpoints every ``checkpoint_every`` steps (model, optimisers, random states,
history) and resumes from the checkpoint when ``fit`` is called again with the same path;
an interrupt (Ctrl-C) is honoured at the next step boundary and leaves a checkpoint, so an
interrupted and resumed run gives the same posterior as an uninterrupted one with the same
seed.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import numpy as np
import torch

from workbench.errors import WorkbenchError
from workbench.models._checkpoint import load_checkpoint, save_checkpoint
from workbench.models._device import preserved_global_rng, resolve_device, seed_everything
from workbench.models.gflownet.env import ParentSetEnv
from workbench.models.gflownet.estimators import ForwardPolicy
from workbench.models.gflownet.exact import log_prob_graphs
from workbench.models.gflownet.f_losses import resolve_alpha, shift_invariant_ftb
from workbench.models.gflownet.losses import (detailed_balance_loss, trajectory_balance_loss,
                                              trajectory_log_ratio)
from workbench.models.gflownet.sampler import (backward_trajectories, perturb_graphs, rollout,
                                               sample_graphs, temper_schedule)
from workbench.models.grn_params import HyperVelocityModel, LinearVelocityReward


class DynGFN:
    """Posterior over (cyclic) regulatory graphs from states and velocities.

    Parameters
    ----------
    reward : str
        ``"linear"`` (l-DynGFN, closed-form ridge) or ``"hyper"`` (h-DynGFN, hypernetwork).
    temperature, sparsity : float
        ``T`` and ``lambda`` of the energy ``MSE / T^2 + lambda * |G_i| / d``.
    ridge : float
        Ridge penalty of the linear reward.
    n_steps : int
        Training steps (each one roll-out batch and one optimiser step).
    n_envs : int
        Graphs rolled out per step (each gives one trajectory per node).
    lr : float
        Adam learning rate of the policy.
    hidden : int
        Width of the policy networks.
    loss : str
        ``"db"`` (detailed balance with stop terms), ``"tb"`` (trajectory balance) or
        ``"ftb"`` (f-trajectory balance, :mod:`.f_losses`: no ``log Z``, and a dial from
        mode-seeking to mass-covering set by ``ftb_alpha``).
    ftb_alpha : float or str
        Member of the f-TB family: ``0`` or ``"reverse_kl"`` (mode-seeking, the gradient of
        squared TB), ``0.5`` or ``"hellinger"``, ``1`` or ``"forward_kl"`` (mass-covering),
        or any other number. Only read when ``loss="ftb"``.
    huber_delta : float, optional
        Huber threshold on the residuals (``None``: squared error).
    detach_next_stop : bool
        Treat ``log P_F(stop | s')`` as a target without gradient (the reference's choice).
    temper_period : int
        Exploration: period (in steps) of the cosine the behaviour policy's inverse
        temperature follows between ``temper_min`` and 1; 0 turns tempering off.
    temper_min : float
        Lowest inverse temperature of that cosine.
    epsilon : float
        Share of uniform random allowed actions mixed into the behaviour policy.
    local_search : float, optional
        Share of extra training trajectories (relative to ``n_envs``) that are built
        backward from locally perturbed versions of the graphs just sampled (one parent
        swapped per row with probability 1/2). They are off-policy DB transitions along
        routes into graphs next to the current modes, such as a parent swapped for an
        equivalent copy; ``0`` turns this off (pure DynGFN exploration). ``None`` (the
        default): 1 for DB, 0 for f-TB, which reached a KL to the exact posterior about 100
        times smaller without them than DB with them (``bench_grn.py --losses``). For f-TB
        they join the roll-outs in one batch with one shift per node; TB ignores them.
    max_parents : int, optional
        Cap on parent-set size (``None``: no cap).
    hyper_hidden : tuple of int
        Hypernetwork variant: hidden sizes of its MLP.
    hyper_width : int
        Hidden width of the per-gene velocity network it emits.
    hyper_activation : str, optional
        Its non-linearity: ``"tanh"``, ``"elu"`` or ``None`` (linear, the reference).
    hyper_steps : int
        Hypernetwork updates per training step.
    hyper_lr : float
        Its Adam learning rate.
    batch_size : int
        Cells per mini-batch of the hypernetwork reward and updates.
    warm_start, warm_start_fit : int
        Linear-to-hyper warm start (hypernetwork variant only), as the DynGFN pipeline
        trains h-DynGFN from an l-DynGFN checkpoint: the first ``warm_start`` of the
        ``n_steps`` steps are exactly l-DynGFN's (closed-form ridge reward, the hypernetwork
        untouched), then the hypernetwork reward takes over from that policy, with a fresh
        Adam state for it. At the switch the hypernetwork first takes ``warm_start_fit``
        updates on graphs drawn from the warm policy (``0``: it starts untrained, as in the
        reference), so that the policy is not steered by an unfitted velocity model.
    checkpoint_path : str or Path, optional
        Where to checkpoint (``None``: no checkpoints).
    checkpoint_every : int
        Steps between checkpoints.
    progress : bool
        Show a tqdm progress bar.
    device : str
        ``"auto"`` picks CUDA, MPS or CPU.
    seed : int
        Fixes initialisation and sampling.
    """

    def __init__(self, reward: str = "linear", temperature: float = 0.01,
                 sparsity: float = 100.0, ridge: float = 1e-4, n_steps: int = 500,
                 n_envs: int = 128, lr: float = 1e-3, hidden: int = 64, loss: str = "db",
                 ftb_alpha: float | str = 0.0,
                 huber_delta: float | None = 10.0, detach_next_stop: bool = False,
                 temper_period: int = 50, temper_min: float = 0.2, epsilon: float = 0.05,
                 local_search: float | None = None,
                 max_parents: int | None = None, hyper_hidden: tuple[int, ...] = (64, 64),
                 hyper_width: int = 12, hyper_activation: str | None = "tanh",
                 hyper_steps: int = 1, hyper_lr: float = 1e-3, batch_size: int = 256,
                 warm_start: int = 0, warm_start_fit: int = 0,
                 checkpoint_path: str | Path | None = None, checkpoint_every: int = 100,
                 progress: bool = False, device: str = "auto", seed: int = 0):
        self.reward = reward
        self.temperature = temperature
        self.sparsity = sparsity
        self.ridge = ridge
        self.n_steps = n_steps
        self.n_envs = n_envs
        self.lr = lr
        self.hidden = hidden
        self.loss = loss
        self.ftb_alpha = ftb_alpha
        self.huber_delta = huber_delta
        self.detach_next_stop = detach_next_stop
        self.temper_period = temper_period
        self.temper_min = temper_min
        self.epsilon = epsilon
        self.local_search = local_search
        self.max_parents = max_parents
        self.hyper_hidden = hyper_hidden
        self.hyper_width = hyper_width
        self.hyper_activation = hyper_activation
        self.hyper_steps = hyper_steps
        self.hyper_lr = hyper_lr
        self.batch_size = batch_size
        self.warm_start = warm_start
        self.warm_start_fit = warm_start_fit
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.device = device
        self.seed = seed

    # ------------------------------------------------------------------ set-up
    def _build(self, d: int, x: np.ndarray, v: np.ndarray) -> None:
        if self.reward not in ("linear", "hyper"):
            raise ValueError(f"reward must be 'linear' or 'hyper', got {self.reward!r}")
        if self.loss not in ("db", "tb", "ftb"):
            raise ValueError(f"loss must be 'db', 'tb' or 'ftb', got {self.loss!r}")
        if self.loss == "ftb":
            self.ftb_alpha_ = resolve_alpha(self.ftb_alpha)
            if self.n_envs < 2:
                raise WorkbenchError(f"loss='ftb' needs n_envs >= 2, got {self.n_envs}.",
                                     "roll out at least two graphs per step.")
        if int(self.warm_start) < 0 or int(self.warm_start_fit) < 0:
            raise WorkbenchError(
                f"warm_start and warm_start_fit must be >= 0, got {self.warm_start} and "
                f"{self.warm_start_fit}.", "give a number of steps (0: no warm start).")
        if self.warm_start and self.reward != "hyper":
            raise WorkbenchError(
                f"warm_start={self.warm_start} needs reward='hyper'.",
                "the warm start trains the linear reward first and then the hypernetwork; "
                "with reward='linear' leave it at 0.")
        dev = resolve_device(self.device)
        self.device_ = dev
        seed_everything(self.seed)
        self.env_ = ParentSetEnv(d, self.max_parents)
        self.policy_ = ForwardPolicy(d, self.hidden).to(dev)
        self.log_z_ = torch.nn.Parameter(torch.zeros(d, device=dev))
        self.optimizer_ = self._policy_optimizer()
        self.generator_ = torch.Generator(device=dev)
        self.generator_.manual_seed(self.seed)
        self.x_ = torch.as_tensor(x, dtype=torch.float32, device=dev)
        self.v_ = torch.as_tensor(v, dtype=torch.float32, device=dev)
        self.linear_reward_ = LinearVelocityReward(
            x, v, temperature=self.temperature, sparsity=self.sparsity, ridge=self.ridge,
            device=dev)
        self.hyper_ = None
        if self.reward == "hyper":
            self.hyper_ = HyperVelocityModel(d, tuple(self.hyper_hidden), self.hyper_width,
                                             self.hyper_activation).to(dev)
            self.hyper_optimizer_ = torch.optim.Adam(self.hyper_.parameters(), lr=self.hyper_lr)
        self.history_ = {"loss": [], "mean_log_reward": [], "mean_edges": [], "hyper_mse": []}
        self.step_ = 0

    def _policy_optimizer(self) -> torch.optim.Adam:
        groups = [{"params": list(self.policy_.parameters()), "lr": self.lr}]
        if self.loss == "tb":  # log Z must travel hundreds of nats: a larger step, as usual
            groups.append({"params": [self.log_z_], "lr": 100 * self.lr})
        return torch.optim.Adam(groups)

    def _modules(self) -> dict:
        mods = {"policy": self.policy_, "optimizer": self.optimizer_,
                "log_z": _ParamHolder(self.log_z_)}
        if self.hyper_ is not None:
            mods["hyper"] = self.hyper_
            mods["hyper_optimizer"] = self.hyper_optimizer_
        return mods

    def save(self, path: str | Path) -> Path:
        """Checkpoint the current state (atomic).

        Parameters
        ----------
        path : str or Path
            File to write (its folder is created).

        Returns
        -------
        Path
            The file written.
        """
        return save_checkpoint(path, step=self.step_, modules=self._modules(),
                               generators={"sampler": self.generator_},
                               extra={"history": self.history_})

    def _load(self, path: Path) -> None:
        info = load_checkpoint(path, modules=self._modules(),
                               generators={"sampler": self.generator_},
                               map_location=self.device_)
        self.step_ = int(info["step"])
        self.history_ = {k: list(v) for k, v in info["extra"]["history"].items()}

    # ------------------------------------------------------------------ training
    def _batch(self):
        n = self.x_.shape[0]
        if n <= self.batch_size:
            return self.x_, self.v_
        idx = torch.randperm(n, generator=self.generator_, device=self.device_)[: self.batch_size]
        return self.x_[idx], self.v_[idx]

    def _hyper_active(self) -> bool:
        """Whether this step scores with the hypernetwork (not during the linear warm start)."""
        return self.hyper_ is not None and self.step_ >= int(self.warm_start)

    def _switch_to_hyper(self) -> None:
        """End of the linear warm start: fresh policy optimiser, hypernetwork fitted first."""
        self.optimizer_ = self._policy_optimizer()
        for _ in range(int(self.warm_start_fit)):
            self._hyper_update()

    def _hyper_update(self) -> float:
        graphs = rollout(self.policy_, self.env_, min(self.n_envs, 64), self.generator_,
                         device=self.device_).final
        xh, vh = self._batch()
        mse = self.hyper_.mse(graphs, xh, vh).mean()
        self.hyper_optimizer_.zero_grad()
        mse.backward()
        self.hyper_optimizer_.step()
        return float(mse.detach())

    def _log_reward(self, states, xb=None, vb=None):
        if not self._hyper_active():
            return self.linear_reward_.log_reward(states)
        with torch.no_grad():
            return self.hyper_.log_reward(states, xb, vb, temperature=self.temperature,
                                          sparsity=self.sparsity)

    def _train_step(self) -> None:
        c = temper_schedule(self.step_, self.temper_period, self.temper_min)
        hyper = self._hyper_active()
        if hyper and self.warm_start and self.step_ == int(self.warm_start):
            self._switch_to_hyper()
        xb, vb = self._batch() if hyper else (None, None)
        tracker = None if hyper else self.linear_reward_.start(self.n_envs)
        traj = rollout(self.policy_, self.env_, self.n_envs, self.generator_,
                       inverse_temperature=c, epsilon=self.epsilon, device=self.device_,
                       reward_tracker=tracker)
        states = traj.states
        if traj.log_rewards is not None:
            log_r = traj.log_rewards if self.loss == "db" else traj.log_rewards[-1]
        elif self.loss == "db":
            log_r = self._log_reward(states, xb, vb)
        else:
            log_r = self._log_reward(traj.final, xb, vb)
        log_pf = self.policy_.log_probs(states, self.env_.forward_mask(states))
        if self.loss == "db":
            loss = detailed_balance_loss(traj, log_pf, log_r, huber_delta=self.huber_delta,
                                         detach_next_stop=self.detach_next_stop)
        elif self.loss == "tb":
            loss = trajectory_balance_loss(traj, log_pf, log_r, self.log_z_,
                                           huber_delta=self.huber_delta)
        else:
            loss = self._ftb_loss(traj, log_pf, log_r, xb, vb)
        if self.loss == "db" and self._local_search() > 0:
            n_ls = max(1, int(round(self._local_search() * self.n_envs)))
            start = traj.final[:n_ls] if n_ls <= self.n_envs else traj.final.repeat(
                (n_ls + self.n_envs - 1) // self.n_envs, 1, 1)[:n_ls]
            back = backward_trajectories(perturb_graphs(start, self.generator_), self.generator_)
            back_r = self._log_reward(back.states, xb, vb)
            back_pf = self.policy_.log_probs(back.states, self.env_.forward_mask(back.states))
            back_loss = detailed_balance_loss(back, back_pf, back_r, huber_delta=self.huber_delta,
                                              detach_next_stop=self.detach_next_stop)
            loss = 0.5 * (loss + back_loss)
        self.optimizer_.zero_grad()
        loss.backward()
        self.optimizer_.step()
        hyper_mse = float("nan")
        if hyper:
            for _ in range(self.hyper_steps):
                hyper_mse = self._hyper_update()
        final_r = log_r[-1] if self.loss == "db" else log_r
        self.history_["loss"].append(float(loss.detach()))
        self.history_["mean_log_reward"].append(float(final_r.mean()))
        self.history_["mean_edges"].append(float(traj.final.sum((-1, -2)).mean()))
        self.history_["hyper_mse"].append(hyper_mse)
        self.step_ += 1

    def _local_search(self) -> float:
        if self.local_search is None:
            return 1.0 if self.loss == "db" else 0.0
        return float(self.local_search)

    def _ftb_loss(self, traj, log_pf, log_r, xb, vb) -> torch.Tensor:
        """f-TB over the roll-outs, plus backward trajectories into perturbed graphs."""
        delta = trajectory_log_ratio(traj, log_pf, log_r)
        if self._local_search() > 0:
            n_ls = max(1, int(round(self._local_search() * self.n_envs)))
            start = traj.final.repeat((n_ls + self.n_envs - 1) // self.n_envs, 1, 1)[:n_ls]
            back = backward_trajectories(perturb_graphs(start, self.generator_), self.generator_)
            back_pf = self.policy_.log_probs(back.states, self.env_.forward_mask(back.states))
            back_r = self._log_reward(back.final, xb, vb)
            delta = torch.cat([delta, trajectory_log_ratio(back, back_pf, back_r)])
        return shift_invariant_ftb(delta, self.ftb_alpha_)

    def fit(self, x, v, *, resume: bool = True, callback=None) -> DynGFN:
        """Train on states ``x`` and velocities ``v`` (``(n, d)`` arrays, already scaled).

        With a ``checkpoint_path`` that holds a checkpoint and ``resume=True``, training
        continues from it. ``callback(model)`` runs after every step; raising
        ``KeyboardInterrupt`` there (or pressing Ctrl-C) stops at the step boundary after
        writing a checkpoint. The global random generators it seeds for its own use are
        put back as they were when it returns.

        Parameters
        ----------
        x : array_like
            ``(n, d)`` cell states (expression), already scaled as the reward expects.
        v : array_like
            ``(n, d)`` their RNA velocities, on the same scale.
        resume : bool
            Continue from the checkpoint at ``checkpoint_path`` when there is one.
        callback : callable, optional
            ``callback(model)``, run after every step.

        Returns
        -------
        DynGFN
            ``self``, trained (``policy_``, ``history_``, ``step_``).
        """
        with preserved_global_rng():
            return self._fit(x, v, resume=resume, callback=callback)

    def _fit(self, x, v, *, resume: bool, callback) -> DynGFN:
        x = np.asarray(x, np.float32)
        v = np.asarray(v, np.float32)
        if x.shape != v.shape or x.ndim != 2:
            raise ValueError(f"x and v must be (n, d) arrays of one shape, got {x.shape}, {v.shape}")
        self._build(x.shape[1], x, v)
        ckpt = Path(self.checkpoint_path) if self.checkpoint_path else None
        if ckpt is not None and resume and ckpt.exists():
            self._load(ckpt)
        stop_flag = {"hit": False}
        previous = _install_sigint(stop_flag)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.n_steps, initial=self.step_, desc="DynGFN", leave=False)
        try:
            while self.step_ < self.n_steps:
                self._train_step()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.history_['loss'][-1]:.3g}",
                                    edges=f"{self.history_['mean_edges'][-1]:.1f}")
                if callback is not None:
                    callback(self)
                if stop_flag["hit"]:
                    raise KeyboardInterrupt
                if ckpt is not None and self.step_ % self.checkpoint_every == 0:
                    self.save(ckpt)
        except KeyboardInterrupt:
            if ckpt is not None:
                self.save(ckpt)
            raise
        finally:
            if bar is not None:
                bar.close()
            _restore_sigint(previous)
        if ckpt is not None:
            self.save(ckpt)
        return self

    # ------------------------------------------------------------------ posterior
    def sample(self, n: int, seed: int | None = None) -> np.ndarray:
        """``n`` graphs drawn from the learned posterior ``Q``.

        Parameters
        ----------
        n : int
            Number of graphs.
        seed : int, optional
            Seed of the draws; ``None`` uses the model's ``seed``.

        Returns
        -------
        ndarray
            ``(n, d, d)`` uint8 adjacency matrices (``G[i, j] = 1``: ``j`` -> ``i``).
        """
        gen = torch.Generator(device=self.device_)
        gen.manual_seed(self.seed if seed is None else seed)
        return sample_graphs(self.policy_, self.env_, n, gen, device=self.device_).numpy()

    def log_prob(self, graphs) -> np.ndarray:
        """Exact ``log Q(G)`` of each graph (sum over all edge-addition orders).

        Parent sets larger than ``MAX_EXACT_PARENTS`` of
        :mod:`workbench.models.gflownet.exact` are estimated by sampling orders.

        Parameters
        ----------
        graphs : array_like
            ``(n, d, d)`` adjacency matrices (``G[i, j]`` nonzero: ``j`` -> ``i``).

        Returns
        -------
        ndarray
            ``(n,)`` log-probabilities.
        """
        return log_prob_graphs(self.policy_, self.env_, graphs, device=self.device_)

    def log_prob_parent_set(self, node: int, parents) -> float:
        """Exact ``log Q_node(S)`` of one parent set.

        Parameters
        ----------
        node : int
            The child node.
        parents : iterable of int
            Indices of its parents ``S``.

        Returns
        -------
        float
            ``log Q_node(S)`` (``-inf`` beyond ``max_parents``).
        """
        from workbench.models.gflownet.exact import log_prob_parent_set

        return log_prob_parent_set(self.policy_, self.env_, node, parents, self.device_)


class _ParamHolder:
    """Gives a bare parameter a ``state_dict`` so the checkpoint helper can store it."""

    def __init__(self, p: torch.nn.Parameter):
        self.p = p

    def state_dict(self):
        return {"value": self.p.detach().clone()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.p.copy_(state["value"])


def _install_sigint(flag: dict):
    """Defer Ctrl-C to the next step boundary (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        if flag["hit"]:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        flag["hit"] = True

    return signal.signal(signal.SIGINT, handler)


def _restore_sigint(previous) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous)
