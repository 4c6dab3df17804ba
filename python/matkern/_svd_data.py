"""Real matrices for the svd family's tests and benchmarks (read from the repository's data/)."""

from __future__ import annotations


import numpy as np

from ._data import data_dir as _data_dir


def blogcatalog(path=None):
    """BlogCatalog adjacency (10312 x 10312, scipy CSR float64, symmetric 0/1)."""
    import scipy.io

    path = path or _data_dir() / "graphs" / "blogcatalog.mat"
    return scipy.io.loadmat(path)["network"].tocsr().astype(np.float64)


def movielens_users(path=None):
    """MovieLens ml-latest-small as a user x movie rating matrix (scipy CSR float64), rows in the
    order of each user's first rating (timestamp), columns the sorted movie ids."""
    import scipy.sparse as sp

    path = path or _data_dir() / "ratings" / "ratings.csv"
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    user, movie, rating, ts = raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64), raw[:, 2], raw[:, 3]
    users, uinv = np.unique(user, return_inverse=True)
    _, minv = np.unique(movie, return_inverse=True)
    first = np.full(len(users), np.inf)
    np.minimum.at(first, uinv, ts)
    rank = np.empty(len(users), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(users))
    A = sp.csr_matrix((rating, (rank[uinv], minv)), shape=(len(users), minv.max() + 1))
    A.sum_duplicates()
    return A
