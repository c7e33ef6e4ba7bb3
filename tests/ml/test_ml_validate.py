"""Model files whose types are all allowed but whose internal arrays lie.

Each attack starts from a real fitted model, saved by SEML, and edits the arrays stored in the
skops archive as an attacker would. `seml ml predict` runs in a subprocess, so a crash of the
compiled code it calls (a segfault) or a hang shows as a test failure rather than taking the
test run down; it must exit 3 (integrity) with one line naming the file and the problem. Each
command is a process forked from one server that imported seml's model code once (`SemlForks`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import ensemble, linear_model, neighbors, svm, tree

from _skops_tamper import SemlForks, SkopsArchive, json_value, set_json_value
from seml.cli import main
from seml.errors import IntegrityError
from seml.ml import iris_frame, load_model, save_model

IRIS = iris_frame("classification")
X, Y = IRIS.drop(columns="species"), IRIS["species"]

Tamper = Callable[[SkopsArchive], None]


def _nodes(a: SkopsArchive, tree_index: int = 0) -> dict[str, Any]:
    """The stored node array of the `tree_index`-th decision tree in the file."""
    nodes: dict[str, Any] = a.state(a.objects("Tree")[tree_index])["nodes"]
    return nodes


def _set_node(field: str, node: int, value: Any, tree_index: int = 0) -> Tamper:
    def change(a: SkopsArchive) -> None:
        a.edit(_nodes(a, tree_index), lambda nodes: nodes[field].__setitem__(node, value))

    return change


def _cycle(a: SkopsArchive) -> None:
    # Node 2 is the first internal node below the root of an Iris tree; point it back at the root.
    def change(nodes: np.ndarray[Any, Any]) -> None:
        assert nodes["left_child"][2] > 2
        nodes["left_child"][2] = 0

    a.edit(_nodes(a), change)


def _node_count(a: SkopsArchive) -> None:
    # scikit-learn clamps a larger count to the stored nodes; a smaller one hides nodes.
    set_json_value(a.state(a.objects("Tree")[0])["node_count"], 3)


def _value_shape(a: SkopsArchive) -> None:
    values = a.state(a.objects("Tree")[0])["values"]
    a.put(values, np.ascontiguousarray(a.array(values)[:, :, :2]))


def _fewer_classes(a: SkopsArchive) -> None:
    # classes_ and n_classes_ agree with each other (2), the tree still has 3 classes.
    state = a.state(a.schema)
    labels = state["classes_"]
    labels["content"] = labels["content"][:2]
    set_json_value(labels["shape"]["content"][0], 2)
    a.put(state["n_classes_"], np.asarray(np.int64(2)))


def _coef_shape(a: SkopsArchive) -> None:
    coef = a.state(a.schema)["coef_"]
    a.put(coef, np.ascontiguousarray(a.array(coef)[:, :3]))


def _leaf_mark(a: SkopsArchive) -> None:
    def change(nodes: np.ndarray[Any, Any]) -> None:
        assert nodes["left_child"][1] == -1  # node 1 is a leaf (setosa)
        nodes["right_child"][1] = 2

    a.edit(_nodes(a), change)


def _predictor_child(a: SkopsArchive) -> None:
    nodes = a.state(a.objects("TreePredictor")[0])["nodes"]
    a.edit(nodes, lambda n: n["left"].__setitem__(0, 10**6))


def _support_counts(a: SkopsArchive) -> None:
    a.edit(a.state(a.schema)["_n_support"], lambda n: n.__setitem__(2, 2400))


def _kd_index(a: SkopsArchive) -> None:
    # A KD tree's state is a tuple: (data, idx_array, node_data, node_bounds, ...).
    state = a.objects("KDTree")[0]["content"]["content"]
    a.edit(state[1], lambda idx: idx.__setitem__(0, 10**9))


def _rf() -> ensemble.RandomForestClassifier:
    return ensemble.RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0)


def _dt() -> tree.DecisionTreeClassifier:
    return tree.DecisionTreeClassifier(max_depth=3, random_state=0)


ATTACKS: list[tuple[str, Callable[[], Any], Tamper, str]] = [
    (
        "child-out-of-range",
        _dt,
        _set_node("left_child", 0, 10**9),
        r"DecisionTreeClassifier\.tree_: node 0 has left child 1000000000, outside its \d+ nodes",
    ),
    (
        "cycle",
        _dt,
        _cycle,
        r"tree_: node 2 points back to node 0 \(a cycle or a shared subtree\)",
    ),
    (
        "feature-out-of-range",
        _dt,
        _set_node("feature", 0, 10**6),
        r"tree_: node 0 splits on feature 1000000, outside the model's 4",
    ),
    ("nan-threshold", _dt, _set_node("threshold", 0, np.nan), r"tree_: node 0 has threshold nan"),
    (
        "value-shape",
        _dt,
        _value_shape,
        r"Wrong shape for value array.*expected \(\d+, 1, 3\), got \(\d+, 1, 2\)",
    ),
    (
        "mismatched-classes",
        _dt,
        _fewer_classes,
        r"tree_: has \[3\] classes per output, the model has \[2\]",
    ),
    (
        "forest-with-one-bad-tree",
        _rf,
        _set_node("left_child", 0, 10**9, tree_index=3),
        r"RandomForestClassifier\.estimators_\[3\]\.tree_: node 0 has left child 1000000000",
    ),
    (
        "linear-coef-shape",
        lambda: linear_model.LogisticRegression(max_iter=500),
        _coef_shape,
        r"LogisticRegression\.coef_: has shape \(3, 3\), expected \(3, 4\)",
    ),
]

# The same, for the other structures compiled code walks.
MORE_ATTACKS: list[tuple[str, Callable[[], Any], Tamper, str]] = [
    ("node-count", _dt, _node_count, r"tree_: says it has 3 nodes but stores \d+"),
    ("leaf-mark", _dt, _leaf_mark, r"tree_: node 1 has children -1 and 2 \(one leaf mark\)"),
    (
        "boosting-stage-feature",
        lambda: ensemble.GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0),
        _set_node("feature", 0, 10**6, tree_index=4),
        r"GradientBoostingClassifier\.estimators_\[1, 1\]\.tree_: node 0 splits on feature",
    ),
    (
        "hist-boosting-child",
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=2, random_state=0),
        _predictor_child,
        r"_predictors\[0\]\[0\]: node 0 has left child 1000000, outside its \d+ nodes",
    ),
    (
        "svm-support-counts",
        lambda: svm.SVC(),
        _support_counts,
        r"SVC: _n_support \[\d+, \d+, 2400\] does not add up to \d+",
    ),
    (
        "kd-tree-index",
        lambda: neighbors.KNeighborsClassifier(algorithm="kd_tree"),
        _kd_index,
        r"KNeighborsClassifier\._tree: idx_array is not a permutation of its 150 points",
    ),
]


def _attack(tmp_path: Path, factory: Callable[[], Any], tamper: Tamper) -> Path:
    good = tmp_path / "model.skops"
    save_model(factory().fit(X, Y), good)
    archive = SkopsArchive(good)
    tamper(archive)
    return archive.save(tmp_path / "tampered.skops")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("factory", "tamper", "problem"),
    [pytest.param(f, t, p, id=name) for name, f, t, p in ATTACKS],
)
def test_predict_refuses_a_tampered_model_without_crashing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    seml_forks: SemlForks,
    factory: Callable[[], Any],
    tamper: Tamper,
    problem: str,
) -> None:
    bad = _attack(tmp_path, factory, tamper)
    inputs, out = tmp_path / "in.csv", tmp_path / "predictions.csv"
    X.to_csv(inputs, index=False)
    argv = ["ml", "predict", "--model", str(bad), "--input", str(inputs), "--out", str(out)]
    # A crash in compiled code kills the process (returncode -11), a cycle hangs it (timeout).
    done = seml_forks.measure(*argv, timeout=180)
    assert done["rc"] == 3, done
    line = done["err"].strip()
    assert "\n" not in line and line.startswith(f"seml: error: {bad}: "), line
    assert re.search(problem, line), line
    assert not out.exists()

    # inspect runs the same checks (in-process: it never predicts).
    assert main(["ml", "inspect", str(bad)]) == 3
    assert re.search(problem, capsys.readouterr().err)


@pytest.mark.slow
def test_predict_refuses_tampered_structures_of_every_family(
    tmp_path: Path, seml_forks: SemlForks
) -> None:
    cases = []
    for name, factory, tamper, problem in MORE_ATTACKS:
        folder = tmp_path / name
        folder.mkdir()
        cases.append((_attack(folder, factory, tamper), problem))
    inputs, out = tmp_path / "in.csv", tmp_path / "predictions.csv"
    X.to_csv(inputs, index=False)
    for bad, problem in cases:
        # Each case in a process of its own: a crash (-11) or a hang (-14) is that case's rc.
        argv = ["ml", "predict", "--model", str(bad), "--input", str(inputs), "--out", str(out)]
        result = seml_forks.measure(*argv, timeout=180)
        assert result["rc"] == 3, result
        assert result["err"].startswith(f"seml: error: {bad}: "), result
        assert re.search(problem, result["err"]), result
    assert not out.exists()


def test_every_attack_starts_from_a_model_that_loads(tmp_path: Path) -> None:
    # The attacks above are refused for what they change, not for something else.
    seen = set()
    for _name, factory, _tamper, _problem in ATTACKS + MORE_ATTACKS:
        kind = type(factory()).__name__
        if kind in seen:
            continue
        seen.add(kind)
        path = tmp_path / f"{kind}.skops"
        model = factory().fit(X, Y)
        save_model(model, path)
        np.testing.assert_array_equal(load_model(path).predict(X), model.predict(X))


def test_decision_path_depth_must_be_the_real_depth(tmp_path: Path) -> None:
    # Tree.decision_path sizes a buffer from max_depth and writes one entry per level.
    def shallower(a: SkopsArchive) -> None:
        depth = a.state(a.objects("Tree")[0])["max_depth"]
        set_json_value(depth, json_value(depth) - 1)

    bad = _attack(tmp_path, _dt, shallower)
    with pytest.raises(IntegrityError, match=r"tree_: records depth 2, its nodes reach depth 3"):
        load_model(bad)


def _seed_pool(a: SkopsArchive) -> dict[str, Any]:
    rng = next(n for n in a.objects("Generator") if n.get("__loader__") == "RandomGeneratorNode")
    pool: dict[str, Any] = rng["content"]["seed_seq"]["content"]["pool_size"]
    return pool


@pytest.mark.slow
def test_a_random_generator_cannot_ask_for_gigabytes_while_it_is_built(
    tmp_path: Path, seml_forks: SemlForks
) -> None:
    # numpy builds a seed sequence's pool at construction, before any structural check runs.
    factory = lambda: ensemble.HistGradientBoostingClassifier(max_iter=1)  # noqa: E731
    good = _attack(tmp_path, factory, lambda a: None)
    baseline = seml_forks.measure("ml", "inspect", str(good))
    assert baseline["rc"] == 0, baseline

    bad = _attack(tmp_path, factory, lambda a: set_json_value(_seed_pool(a), 10**8))
    refused = seml_forks.measure("ml", "inspect", str(bad))
    assert refused["rc"] == 3, refused
    assert "asks for a seed pool of 100000000 words" in refused["err"]
    assert refused["peak_kib"] < baseline["peak_kib"] + 64 * 1024

    # The same value reached through a shared id: the pool node reads 4 but names the id of an
    # earlier node holding 10**8 (skops would build the pool from that one).
    def shared(a: SkopsArchive) -> None:
        max_iter = a.state(a.schema)["max_iter"]
        set_json_value(max_iter, 10**8)
        _seed_pool(a)["__id__"] = max_iter["__id__"]

    aliased = _attack(tmp_path, factory, shared)
    loaded = seml_forks.measure("ml", "inspect", str(aliased))
    assert loaded["rc"] == 0, loaded  # max_iter = 10**8 is a valid parameter
    assert loaded["peak_kib"] < baseline["peak_kib"] + 64 * 1024
    rng = load_model(aliased)._feature_subsample_rng
    assert rng.bit_generator.seed_seq.pool_size == 4
