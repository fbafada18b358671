"""Cross-identification of overlapping detections (SCAMP's linked "samples").

Detections of different fields closer than a radius are joined friends-of-friends on a grid hash (numba:
a source seen by k exposures costs k^2 distance tests but no pair list in memory).  Each resulting source
is then linked as a *chain* ordered by field, so a source seen k times gives k - 1 constraints, as in
SCAMP, instead of k(k - 1)/2 pairs.  Sources holding two detections of the same field are ambiguous
(blends, crowding) and dropped.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["friends_of_friends", "chain_links", "match_reference"]


@njit(cache=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(cache=True)
def _fof(x, y, field, order, ukeys, ustart, ucount, cx, cy, ncy, radius2, parent):
    # detections sorted by cell (``order``); the occupied cells are ``ukeys`` (sorted), so the 3x3
    # neighbourhood of a cell is found by binary search: memory stays proportional to the detections
    # whatever the area of the group
    n = len(order)
    for oi in range(n):
        i = order[oi]
        for dx in range(-1, 2):
            gx = cx[i] + dx
            if gx < 0:
                continue
            for dy in range(-1, 2):
                gy = cy[i] + dy
                if gy < 0 or gy >= ncy:
                    continue
                key = gx * ncy + gy
                c = np.searchsorted(ukeys, key)
                if c >= len(ukeys) or ukeys[c] != key:
                    continue
                for ok in range(ustart[c], ustart[c] + ucount[c]):
                    j = order[ok]
                    if j <= i or field[j] == field[i]:
                        continue
                    ddx = x[i] - x[j]
                    ddy = y[i] - y[j]
                    if ddx * ddx + ddy * ddy < radius2:
                        ri = _find(parent, i)
                        rj = _find(parent, j)
                        if ri != rj:
                            parent[max(ri, rj)] = min(ri, rj)
    for i in range(len(parent)):
        parent[i] = _find(parent, i)


def friends_of_friends(x, y, field, radius: float) -> np.ndarray:
    """Label of the source each detection belongs to (detections of one field are never joined)."""
    n = len(x)
    if n == 0:
        return np.zeros(0, np.int64)
    x0, y0 = x.min(), y.min()
    ncy = int((y.max() - y0) / radius) + 1
    cx = ((x - x0) / radius).astype(np.int32)  # (tens of millions of detections: compact temporaries)
    cy = ((y - y0) / radius).astype(np.int32)
    cell = cx.astype(np.int64) * ncy + cy
    order = np.argsort(cell, kind="stable")
    cell = cell[order]
    ustart = np.flatnonzero(np.concatenate([[True], cell[1:] != cell[:-1]]))
    ukeys = cell[ustart]
    del cell
    ucount = np.diff(np.append(ustart, n))
    parent = np.arange(n, dtype=np.int64)
    _fof(x, y, field, order, ukeys, ustart, ucount, cx, cy, ncy, radius * radius, parent)
    return parent


def chain_links(labels: np.ndarray, key: np.ndarray, valid: np.ndarray, field: np.ndarray):
    """Pairs (i, j) linking consecutive detections of each source, ordered by ``key`` (e.g. field index).

    Only ``valid`` detections take part; sources with two valid detections of one field are dropped.
    """
    idx = np.nonzero(valid)[0]
    if len(idx) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = idx[np.lexsort((key[idx], labels[idx]))]
    lab = labels[order]
    same = lab[1:] == lab[:-1]
    dup_field = same & (field[order][1:] == field[order][:-1])
    bad_sources = np.unique(lab[1:][dup_field])
    del lab, dup_field
    i, j = order[:-1][same], order[1:][same]
    del order, same
    if len(bad_sources):
        keep = ~np.isin(labels[i], bad_sources)
        i, j = i[keep], j[keep]
    itype = np.int32 if len(labels) < 2 ** 31 else np.int64  # links are as many as detections: compact
    return i.astype(itype), j.astype(itype)


def match_reference(x, y, rx, ry, radius: float, field=None):
    """Index of the nearest reference star within ``radius`` of each detection (-1 when none).

    With ``field``, a reference star is kept for the closest detection of each field only: a galaxy
    1.5" from a star would otherwise be "matched" too and pollute the solution and the statistics.
    """
    from scipy.spatial import cKDTree

    if len(rx) == 0 or len(x) == 0:
        return np.full(len(x), -1, np.int64)
    tree = cKDTree(np.column_stack([rx, ry]))
    dist, idx = tree.query(np.column_stack([x, y]), distance_upper_bound=radius)
    found = np.isfinite(dist)
    idx = np.where(found, idx, -1).astype(np.int64)
    if field is not None and found.any():
        cand = np.nonzero(found)[0]
        key = field[cand].astype(np.int64) * (len(rx) + 1) + idx[cand]
        order = cand[np.lexsort((dist[cand], key))]
        skey = field[order].astype(np.int64) * (len(rx) + 1) + idx[order]
        dup = np.concatenate([[False], skey[1:] == skey[:-1]])
        idx[order[dup]] = -1
    return idx
