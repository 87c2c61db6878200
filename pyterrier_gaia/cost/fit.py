"""Fitting linear cost models: batch non-negative least squares, and exponentially weighted
recursive least squares (EW-RLS) with a forgetting factor, outlier clipping and a projection
onto non-negative coefficients.

Both work on a design matrix ``X`` (rows = calls, columns = features) and a target matrix ``Y``
(rows = calls, columns = targets such as latency and energy). Column scaling is the caller's
business (:mod:`pyterrier_gaia.cost.model` scales every feature to a maximum of 1).
"""
import numpy as np


def nnls(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Coefficients ``theta`` (features x targets), each column the non-negative least-squares fit
    of that column of ``Y`` on ``X`` (``scipy.optimize.nnls``)."""
    from scipy.optimize import nnls as scipy_nnls

    X, Y = np.asarray(X, dtype=float), _as_matrix(Y)
    return np.column_stack([scipy_nnls(X, Y[:, j])[0] for j in range(Y.shape[1])])


class EWRLS:
    """Exponentially weighted recursive least squares over several targets that share features.

    ``forgetting`` (λ, 0 < λ <= 1) weights an observation ``t`` steps old by λ^t (λ = 1: ordinary
    least squares; about ``1 / (1 - λ)`` observations in its memory otherwise). ``clip`` (k) caps
    each residual at k·σ before it moves the fit, σ being a running estimate of the residual scale
    of that target (fed with the clipped residuals, so a lasting change of level still gets through
    as σ grows); ``None`` turns clipping off.

    The recursion itself is the textbook unconstrained one (``theta_ls``, ``P``). With ``nonneg``
    the coefficients in use, ``theta``, are its projection onto >= 0 after each update, taken in
    the metric of the weighted information matrix ``R = Σ λ^t x xᵀ``: that is the exact
    non-negative weighted least-squares fit of everything seen (NNLS after a batch), and it keeps
    every prediction monotone in every feature. (Clipping the recursion's own coefficients at 0
    instead makes it diverge on collinear counts such as FLOPs and layer-tokens.)

    Start it from a batch of observations with :meth:`fit`; :meth:`update` adds one at a time.
    With λ = 1, no clipping and no active constraint it gives exactly the batch least-squares fit
    of all observations so far.
    """

    def __init__(self, theta_ls, P, R, sigma, weight, forgetting=1.0, clip=3.0, nonneg=True):
        if not 0 < forgetting <= 1:
            raise ValueError(f"EWRLS: forgetting={forgetting!r}; expected a factor in (0, 1]")
        if clip is not None and not clip > 0:
            raise ValueError(f"EWRLS: clip={clip!r}; expected a positive number of sigmas or None")
        self.theta_ls = np.array(theta_ls, dtype=float)
        self.P = np.array(P, dtype=float)
        self.R = np.array(R, dtype=float)
        self.sigma = np.array(sigma, dtype=float)
        self.weight = float(weight)
        self.forgetting, self.clip, self.nonneg = float(forgetting), clip, bool(nonneg)
        self.theta = self._project()

    @classmethod
    def fit(cls, X, Y, forgetting=1.0, clip=3.0, nonneg=True) -> "EWRLS":
        """Start from a batch: least squares (``theta`` is then the NNLS fit with ``nonneg``),
        ``P = (XᵀX)⁺``, σ the root-mean-square residual of each target."""
        X, Y = np.asarray(X, dtype=float), _as_matrix(Y)
        theta_ls = np.linalg.lstsq(X, Y, rcond=None)[0]
        R = X.T @ X
        sigma = np.sqrt(np.mean((Y - X @ theta_ls) ** 2, axis=0))
        return cls(theta_ls, np.linalg.pinv(R), R, sigma, len(X), forgetting, clip, nonneg)

    def _project(self) -> np.ndarray:
        """argmin over theta >= 0 of (theta - theta_ls)ᵀ R (theta - theta_ls), per target."""
        if not self.nonneg or (self.theta_ls >= 0).all():
            return self.theta_ls.copy()
        from scipy.optimize import nnls as scipy_nnls

        values, vectors = np.linalg.eigh((self.R + self.R.T) / 2)
        root = np.sqrt(np.clip(values, 0, None))[:, None] * vectors.T       # rootᵀ root = R
        return np.column_stack([scipy_nnls(root, root @ self.theta_ls[:, j])[0]
                                for j in range(self.theta_ls.shape[1])])

    def predict(self, X) -> np.ndarray:
        """Predictions (rows x targets) for the rows of ``X``."""
        return np.atleast_2d(np.asarray(X, dtype=float)) @ self.theta

    def update(self, x, y) -> np.ndarray:
        """Add one observation (feature vector ``x``, target vector ``y``); returns the residuals
        of the recursion as used (after clipping)."""
        x = np.asarray(x, dtype=float)
        residual = np.asarray(y, dtype=float) - x @ self.theta_ls
        if self.clip is not None and self.weight >= len(x):
            bound = self.clip * self.sigma
            residual = np.where(bound > 0, np.clip(residual, -bound, bound), residual)
        Px = self.P @ x
        gain = Px / (self.forgetting + x @ Px)
        self.theta_ls += np.outer(gain, residual)
        self.P = (self.P - np.outer(gain, Px)) / self.forgetting
        self.P = (self.P + self.P.T) / 2
        self.R = self.forgetting * self.R + np.outer(x, x)
        self.weight = self.forgetting * self.weight + 1
        self.sigma = np.sqrt(self.sigma ** 2 + (residual ** 2 - self.sigma ** 2) / self.weight)
        self.theta = self._project()
        return residual

    def state(self) -> dict:
        """A JSON-serialisable dict that ``EWRLS(**state)`` restores."""
        return {"theta_ls": self.theta_ls.tolist(), "P": self.P.tolist(), "R": self.R.tolist(),
                "sigma": self.sigma.tolist(), "weight": self.weight, "forgetting": self.forgetting,
                "clip": self.clip, "nonneg": self.nonneg}


def _as_matrix(Y) -> np.ndarray:
    Y = np.asarray(Y, dtype=float)
    return Y.reshape(-1, 1) if Y.ndim == 1 else Y
