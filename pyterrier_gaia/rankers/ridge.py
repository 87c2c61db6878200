"""Ridge regression with an unpenalised bias and a leave-one-out choice of penalty (exit heads and the
diffusion re-ranker's usefulness model are fitted with it)."""
import numpy as np

RIDGE_GRID = tuple(10.0 ** e for e in range(-5, 2))  # penalties tried (relative, see ridge_fit)


def ridge_fit(features: np.ndarray, target: np.ndarray, ridge=None):
    """Ridge regression with an unpenalised bias: a (dim + 1) x outputs matrix (bias in the last row)
    and the penalty used, relative to the mean diagonal of the Gram matrix. ``ridge=None`` picks it from
    RIDGE_GRID by leave-one-out error.

    Solved with torch: numpy's multi-threaded OpenBLAS LAPACK segfaults once pyserini's JVM runs
    in the process (measured here with numpy.linalg.solve on a 10 x 10 system).
    """
    import torch

    x = torch.from_numpy(features).double()
    y = torch.from_numpy(target).double().reshape(len(target), -1)
    x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
    u, sv, vt = torch.linalg.svd(x - x_mean, full_matrices=False)
    uy = u.T @ (y - y_mean)
    scale = float((sv ** 2).sum()) / x.shape[1]  # the Gram matrix's mean diagonal
    if ridge is None:
        def leave_one_out(relative):  # the exact leave-one-out error of a ridge fit, from the hat matrix
            kept = sv ** 2 / (sv ** 2 + relative * scale)
            residuals = (y - y_mean) - u @ (kept[:, None] * uy)
            leverage = (u ** 2) @ kept + 1 / len(x)
            return float(((residuals ** 2).sum(dim=1) / (1 - leverage).clamp(min=1e-9) ** 2).sum())
        ridge = min(RIDGE_GRID, key=leave_one_out)
    weight = vt.T @ ((sv / (sv ** 2 + ridge * scale))[:, None] * uy)
    return torch.vstack([weight, y_mean - x_mean @ weight]).numpy(), ridge
