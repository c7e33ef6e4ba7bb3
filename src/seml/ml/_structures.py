"""Checks of the structures compiled code walks without bounds checks.

scikit-learn's tree walkers (`Tree.apply`, gradient boosting's `predict_stages`, the
histogram-boosting predictor, KD/ball-tree queries) index node arrays with values read from
the same arrays. A model file can set those values, so every index is checked here, with
vectorised numpy (a forest of a million nodes takes milliseconds):

- decision trees: node count equals the stored nodes; leaves are marked consistently; children
  in range, numbered after their parent and each reached exactly once (no cycle, no sharing, no
  orphan); split features in range; thresholds not NaN; values shaped (nodes, outputs,
  classes) and finite; the recorded depth is the real one (`decision_path` sizes a buffer
  from it);
- histogram-boosting predictors: the same for their node records and categorical bitsets;
- KD and ball trees: the points, the index permutation, the implicit heap of nodes and the
  bounds each node covers, and the distance metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seml.ml._checks import Invalid, array, child, exact_type, finite, integer, number

__all__ = ["check_binary_tree", "check_predictor", "check_tree"]

_TREE_LEAF = -1
_TREE_UNDEFINED = -2
_METRIC_TYPES = {
    "euclidean": "EuclideanDistance64",
    "manhattan": "ManhattanDistance64",
    "chebyshev": "ChebyshevDistance64",
    "minkowski": "MinkowskiDistance64",
}


def check_tree(tree: Any, where: str, *, n_features: int, n_classes: list[int]) -> None:
    """A fitted `sklearn.tree._tree.Tree` for `n_features` inputs and one output per entry of
    `n_classes` (1 for a regression output)."""
    from sklearn.tree._tree import Tree

    exact_type(tree, Tree, where)
    n = tree.node_count
    if n < 1 or n != tree.capacity:
        raise Invalid(f"{where}: says it has {n} nodes but stores {tree.capacity}")
    if tree.n_features != n_features:
        raise Invalid(
            f"{where}: is built for {tree.n_features} features, the model has {n_features}"
        )
    if tree.n_outputs != len(n_classes):
        raise Invalid(f"{where}: has {tree.n_outputs} outputs, expected {len(n_classes)}")
    got = [int(c) for c in tree.n_classes]
    if got != n_classes or tree.max_n_classes != max(n_classes):
        raise Invalid(f"{where}: has {got} classes per output, the model has {n_classes}")
    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    array(values, child(where, "value"), kinds="f", shape=(n, len(n_classes), max(n_classes)))
    finite(values, child(where, "value"))

    left = nodes["left_child"].astype(np.int64)
    right = nodes["right_child"].astype(np.int64)
    leaf = left == _TREE_LEAF
    mixed = np.flatnonzero(leaf != (right == _TREE_LEAF))
    if mixed.size:
        i = int(mixed[0])
        raise Invalid(f"{where}: node {i} has children {left[i]} and {right[i]} (one leaf mark)")
    depth = _check_graph(left, right, leaf, where)
    if depth != tree.max_depth:
        raise Invalid(f"{where}: records depth {tree.max_depth}, its nodes reach depth {depth}")

    feature = nodes["feature"].astype(np.int64)
    threshold = nodes["threshold"]
    _check_features(feature, ~leaf, n_features, where)
    leaf_marks = leaf & ((feature != _TREE_UNDEFINED) | (threshold != _TREE_UNDEFINED))
    if leaf_marks.any():
        i = int(np.flatnonzero(leaf_marks)[0])
        raise Invalid(f"{where}: leaf {i} carries a split (feature {feature[i]})")
    _check_thresholds(threshold, ~leaf, where)
    _check_flags(nodes["missing_go_to_left"], "missing_go_to_left", where)


def check_predictor(
    predictor: Any, where: str, *, n_features: int, categorical: np.ndarray[Any, Any]
) -> None:
    """A histogram-boosting `TreePredictor` for `n_features` inputs, `categorical` marking the
    features the bin mapper treats as categories."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    exact_type(predictor, TreePredictor, where)
    nodes = array(
        predictor.nodes, child(where, "nodes"), kinds="V", ndim=1, dtype=PREDICTOR_RECORD_DTYPE
    )
    if nodes.size < 1:
        raise Invalid(f"{where}: has no nodes")
    bitsets = {}
    for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
        bitsets[name] = array(
            getattr(predictor, name, None),
            child(where, name),
            kinds="u",
            shape=(None, 8),
            dtype=np.dtype(np.uint32),
        )
    for flag in ("is_leaf", "missing_go_to_left", "is_categorical"):
        _check_flags(nodes[flag], flag, where)
    leaf = nodes["is_leaf"] == 1
    internal = ~leaf
    _check_graph(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), leaf, where)
    feature = nodes["feature_idx"].astype(np.int64)
    _check_features(feature, internal, n_features, where)
    split_on_category = internal & (nodes["is_categorical"] == 1)
    _check_thresholds(nodes["num_threshold"], internal & ~split_on_category, where)
    finite(nodes["value"][leaf], child(where, "leaf values"))
    if split_on_category.any():
        where_cat = np.flatnonzero(split_on_category)
        out = nodes["bitset_idx"][where_cat] >= bitsets["raw_left_cat_bitsets"].shape[0]
        if out.any():
            i = int(where_cat[np.argmax(out)])
            raise Invalid(
                f"{where}: node {i} uses category bitset {nodes['bitset_idx'][i]}, "
                f"outside its {bitsets['raw_left_cat_bitsets'].shape[0]}"
            )
        not_categorical = ~categorical[feature[where_cat]]
        if not_categorical.any():
            i = int(where_cat[np.argmax(not_categorical)])
            raise Invalid(
                f"{where}: node {i} splits feature {feature[i]} by category, but the "
                "model does not treat it as categorical"
            )


def check_binary_tree(
    tree: Any, where: str, *, points: np.ndarray[Any, Any], metric: str, p: float | None
) -> None:
    """A `KDTree` or `BallTree` built on `points` with distance `metric` (`p` for minkowski)."""
    from sklearn.neighbors import BallTree, KDTree

    exact_type(tree, (KDTree, BallTree), where)
    (data, index, node_data, bounds, _leaf_size, levels, n_nodes, *_stats, dist, weights) = (
        tree.__getstate__()
    )
    data = array(data, child(where, "data"), kinds="f", dtype=np.dtype(np.float64), ndim=2)
    if data.shape != points.shape or not np.array_equal(data, points):
        raise Invalid(f"{where}: holds other points than the model ({data.shape})")
    n, d = data.shape
    index = array(index, child(where, "idx_array"), kinds="i", shape=(n,), dtype=np.dtype(np.intp))
    if (index < 0).any() or (index >= n).any() or (np.bincount(index, minlength=n) != 1).any():
        raise Invalid(f"{where}: idx_array is not a permutation of its {n} points")
    levels = integer(levels, child(where, "n_levels"), low=1, high=62)
    n_nodes = integer(n_nodes, child(where, "n_nodes"), low=1)
    if n_nodes != 2**levels - 1:
        raise Invalid(f"{where}: has {n_nodes} nodes, but {levels} levels make {2**levels - 1}")
    array(node_data, child(where, "node_data"), kinds="V", shape=(n_nodes,))
    if set(node_data.dtype.names or ()) != {"idx_start", "idx_end", "is_leaf", "radius"}:
        raise Invalid(f"{where}: node_data has fields {node_data.dtype.names}")
    planes = 2 if type(tree) is KDTree else 1
    bounds = array(bounds, child(where, "node_bounds"), kinds="f", shape=(planes, n_nodes, d))
    finite(bounds, child(where, "node_bounds"))
    _check_heap(node_data, n, where)
    if weights is not None:
        raise Invalid(f"{where}: carries sample weights (only kernel density uses them)")
    _check_metric(dist, child(where, "dist_metric"), metric=metric, p=p)


def _check_graph(
    left: np.ndarray[Any, Any], right: np.ndarray[Any, Any], leaf: np.ndarray[Any, Any], where: str
) -> int:
    """Children of internal nodes are in range, numbered after their parent, and every node
    but the root is reached exactly once. Returns the depth of the deepest leaf."""
    n = left.size
    parents = np.flatnonzero(~leaf)
    for side, kids in (("left", left[parents]), ("right", right[parents])):
        out = (kids < 0) | (kids >= n)
        if out.any():
            i = int(np.argmax(out))
            raise Invalid(
                f"{where}: node {parents[i]} has {side} child {kids[i]}, outside its {n} nodes"
            )
        back = kids <= parents
        if back.any():
            i = int(np.argmax(back))
            raise Invalid(
                f"{where}: node {parents[i]} points back to node {kids[i]} (a cycle or a "
                "shared subtree)"
            )
    reached = np.bincount(np.concatenate([left[parents], right[parents]]), minlength=n)[1:]
    if (reached != 1).any():
        i = int(np.argmax(reached != 1))
        times = "never" if reached[i] == 0 else f"{reached[i]} times"
        raise Invalid(f"{where}: node {i + 1} is reached {times} from the root")
    depth, frontier = 0, np.array([0])
    while True:
        frontier = frontier[~leaf[frontier]]
        if frontier.size == 0:
            return depth
        frontier = np.concatenate([left[frontier], right[frontier]])
        depth += 1


def _check_features(
    feature: np.ndarray[Any, Any], internal: np.ndarray[Any, Any], n_features: int, where: str
) -> None:
    out = internal & ((feature < 0) | (feature >= n_features))
    if out.any():
        i = int(np.argmax(out))
        raise Invalid(
            f"{where}: node {i} splits on feature {feature[i]}, outside the model's {n_features}"
        )


def _check_thresholds(
    threshold: np.ndarray[Any, Any], splits: np.ndarray[Any, Any], where: str
) -> None:
    # +inf is legitimate: the split that sends only missing values to the right.
    bad = splits & (np.isnan(threshold) | (threshold == -np.inf))
    if bad.any():
        i = int(np.argmax(bad))
        raise Invalid(f"{where}: node {i} has threshold {threshold[i]}")


def _check_flags(values: np.ndarray[Any, Any], name: str, where: str) -> None:
    bad = values > 1
    if bad.any():
        i = int(np.argmax(bad))
        raise Invalid(f"{where}: node {i} has {name} = {values[i]}, expected 0 or 1")


def _check_heap(node_data: np.ndarray[Any, Any], n: int, where: str) -> None:
    """Nodes form a complete binary heap (children of i at 2i+1 and 2i+2) whose point ranges
    split the parent's range exactly, from [0, n) at the root."""
    start = node_data["idx_start"].astype(np.int64)
    end = node_data["idx_end"].astype(np.int64)
    is_leaf = node_data["is_leaf"]
    count = node_data.size
    _check_flags(is_leaf, "is_leaf", where)
    if start[0] != 0 or end[0] != n:
        raise Invalid(f"{where}: the root covers points [{start[0]}, {end[0]}), not [0, {n})")
    bad = (start < 0) | (start > end) | (end > n)
    if bad.any():
        i = int(np.argmax(bad))
        raise Invalid(f"{where}: node {i} covers points [{start[i]}, {end[i]}) of {n}")
    radius = node_data["radius"]
    if (~np.isfinite(radius) | (radius < 0)).any():
        i = int(np.argmax(~np.isfinite(radius) | (radius < 0)))
        raise Invalid(f"{where}: node {i} has radius {radius[i]}")
    inner = np.flatnonzero(is_leaf == 0)
    if inner.size and 2 * int(inner[-1]) + 2 >= count:
        raise Invalid(f"{where}: node {inner[-1]} is not a leaf but has no children")
    lo, hi = 2 * inner + 1, 2 * inner + 2
    split = (start[lo] != start[inner]) | (end[lo] != start[hi]) | (end[hi] != end[inner])
    if split.any():
        i = int(inner[np.argmax(split)])
        raise Invalid(f"{where}: the children of node {i} do not split its points")


def _check_metric(dist: Any, where: str, *, metric: str, p: float | None) -> None:
    expected = _METRIC_TYPES.get(metric)
    if (
        expected is None
        or type(dist).__name__ != expected
        or not type(dist).__module__.startswith("sklearn.metrics._dist_metrics")
    ):
        raise Invalid(f"{where}: is a {type(dist).__name__}, the model uses {metric!r}")
    if metric == "minkowski":
        state_p, weights, _matrix = dist.__getstate__()
        if number(state_p, child(where, "p")) != p:
            raise Invalid(f"{where}: has p = {state_p}, the model uses {p}")
        if np.asarray(weights).size:
            raise Invalid(f"{where}: carries feature weights (weighted distances are refused)")
