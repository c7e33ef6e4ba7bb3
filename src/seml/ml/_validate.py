"""Structural validation of a loaded model, before anything predicts with it.

The allow-list of types says what a model file may construct; it says nothing about the values
inside. Compiled scikit-learn code trusts those values (a tree's child indices, a support vector
machine's counts), so a file of allowed types can still crash or hang the runner. Every estimator
SEML loads therefore has a check here of everything its predictions read: parameters (through
scikit-learn's own parameter validation), feature count and names, classes, coefficient and
intercept shapes, sub-estimators and their counts, and the native structures (`_structures`).

An estimator class without a check here is not on the allow-list: `VALIDATED_ESTIMATORS` is the
list of estimators SEML trains and loads.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from seml.errors import IntegrityError
from seml.ml._checks import (
    Invalid,
    array,
    attr,
    child,
    choice,
    exact_type,
    finite,
    integer,
    number,
    qualname,
)
from seml.ml._structures import check_binary_tree, check_predictor, check_tree

__all__ = ["validate_model", "validated_estimators"]

_Check = Callable[[Any, str, bool], None]  # (estimator, where, is_classifier)


def validate_model(model: Any, *, source: str) -> None:
    """Raise `IntegrityError` naming `source` and the first inconsistency in `model`."""
    try:
        _estimator(model, type(model).__name__, top=True)
    except Invalid as e:
        raise IntegrityError(f"{source}: {e} (refused before any prediction)") from None


def validated_estimators() -> frozenset[str]:
    """``module.Class`` of every estimator SEML can check, hence train and load."""
    return frozenset(_registry())


def _estimator(model: Any, where: str, *, top: bool = False) -> None:
    check = _registry().get(qualname(model))
    if check is None:
        raise Invalid(f"{where}: a {qualname(model)} is not an estimator SEML can check")
    from sklearn.base import is_classifier

    _common(model, where, top=top)
    check(model, where, bool(is_classifier(model)))


def _common(model: Any, where: str, *, top: bool) -> None:
    """What every estimator must satisfy: no state shadowing its class, valid parameters, a
    feature count, and names for the top-level model."""
    classes = type(model).__mro__
    params = model.get_params(deep=False)
    for key in vars(model):
        # A parameter may shadow a class-level default (Lars.positive); it is validated below.
        if key not in params and any(key in vars(c) for c in classes):
            raise Invalid(f"{where}: its state overrides the class attribute {key!r}")
    try:
        model._validate_params()
    except Exception as e:  # sklearn raises InvalidParameterError (ValueError, TypeError)
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise Invalid(f"{where}: invalid parameters: {reason}") from None
    n = integer(attr(model, "n_features_in_", where), child(where, "n_features_in_"), low=1)
    names = getattr(model, "feature_names_in_", None)
    if names is None and top:
        raise Invalid(f"{where}: records no feature names")
    if names is not None:
        names = array(names, child(where, "feature_names_in_"), kinds="OU", shape=(n,))
        listed = names.tolist()
        if not all(isinstance(x, str) for x in listed) or len(set(listed)) != n:
            raise Invalid(f"{where}: feature_names_in_ are not {n} distinct names")


def _single_output(model: Any, where: str) -> None:
    outputs = integer(attr(model, "n_outputs_", where), child(where, "n_outputs_"))
    if outputs != 1:
        raise Invalid(f"{where}: predicts {outputs} outputs; SEML models predict one target")


def _features(model: Any) -> int:
    return int(model.n_features_in_)  # checked by _common


def _classes(model: Any, where: str, *, at_least: int = 1) -> np.ndarray[Any, Any]:
    classes = array(
        attr(model, "classes_", where), child(where, "classes_"), kinds="biufOU", ndim=1
    )
    listed = classes.tolist()
    if classes.dtype.kind == "O" and not all(type(c) in (str, int) for c in listed):
        raise Invalid(f"{where}: classes_ holds values that are not labels")
    if len(listed) < at_least or len(set(listed)) != len(listed):
        raise Invalid(f"{where}: classes_ are not {at_least} or more distinct labels")
    declared = getattr(model, "n_classes_", len(listed))
    if integer(declared, child(where, "n_classes_")) != len(listed):
        raise Invalid(f"{where}: n_classes_ is {declared} but classes_ lists {len(listed)}")
    return classes


def _floats(value: Any, where: str, shape: tuple[int | None, ...]) -> np.ndarray[Any, Any]:
    values = array(value, where, kinds="f", shape=shape)
    finite(values, where)
    return values


def _sub(model: Any, name: str, i: int | tuple[int, int], where: str) -> str:
    index = f"[{i[0]}, {i[1]}]" if isinstance(i, tuple) else f"[{i}]"
    return f"{child(where, name)}{index}"


# --- trees and ensembles of trees ------------------------------------------------------------


def _decision_tree(model: Any, where: str, classifier: bool) -> None:
    _single_output(model, where)
    n_classes = [len(_classes(model, where))] if classifier else [1]
    tree = attr(model, "tree_", where)
    check_tree(tree, child(where, "tree_"), n_features=_features(model), n_classes=n_classes)


def _forest(member: str) -> _Check:
    def check(model: Any, where: str, classifier: bool) -> None:
        _single_output(model, where)
        n = _features(model)
        k = len(_classes(model, where)) if classifier else 0
        trees = attr(model, "estimators_", where)
        if type(trees) is not list or len(trees) != model.n_estimators:
            raise Invalid(f"{where}: estimators_ is not a list of {model.n_estimators} trees")
        for i, tree in enumerate(trees):
            at = _sub(model, "estimators_", i, where)
            if type(tree).__name__ != member:
                raise Invalid(f"{at}: is a {type(tree).__name__}, expected {member}")
            _estimator(tree, at)
            _same_features(tree, n, at)
            if classifier and len(tree.classes_) != k:
                raise Invalid(f"{at}: has {len(tree.classes_)} classes, the forest {k}")

    return check


def _same_features(sub: Any, n: int, where: str) -> None:
    if sub.n_features_in_ != n:
        raise Invalid(f"{where}: takes {sub.n_features_in_} features, the model {n}")


def _gradient_boosting(model: Any, where: str, classifier: bool) -> None:
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.tree import DecisionTreeRegressor

    n = _features(model)
    k = len(_classes(model, where, at_least=2)) if classifier else 1
    per_stage = 1 if k <= 2 else k
    declared = integer(model.n_trees_per_iteration_, child(where, "n_trees_per_iteration_"))
    if declared != per_stage:
        raise Invalid(f"{where}: n_trees_per_iteration_ is {declared}, expected {per_stage}")
    stages = integer(attr(model, "n_estimators_", where), child(where, "n_estimators_"), low=1)
    trees = array(
        model.estimators_, child(where, "estimators_"), kinds="O", shape=(stages, per_stage)
    )
    for (i, j), tree in np.ndenumerate(trees):
        at = _sub(model, "estimators_", (i, j), where)
        exact_type(tree, DecisionTreeRegressor, at)
        _estimator(tree, at)
        _same_features(tree, n, at)
    init = attr(model, "init_", where)
    if not (isinstance(init, str) and init == "zero"):
        at = child(where, "init_")
        exact_type(init, DummyClassifier if classifier else DummyRegressor, at)
        _estimator(init, at)
        if classifier and len(init.classes_) != k:
            raise Invalid(f"{at}: has {len(init.classes_)} classes, the model {k}")
    _same_loss(model, where)


def _same_loss(model: Any, where: str) -> None:
    """The stored loss object is the one the parameters call for (predictions apply its link)."""
    loss = attr(model, "_loss", where)
    expected = model._get_loss(sample_weight=None)
    parts = ("", "closs", "link")
    for part in parts:
        got = getattr(loss, part) if part else loss
        want = getattr(expected, part) if part else expected
        if type(got) is not type(want):
            name = child(child(where, "_loss"), part) if part else child(where, "_loss")
            raise Invalid(f"{name}: is a {type(got).__name__}, expected {type(want).__name__}")
    if loss.n_classes != expected.n_classes:
        raise Invalid(
            f"{where}._loss: is for {loss.n_classes} classes, the model has {expected.n_classes}"
        )


def _hist_gradient_boosting(model: Any, where: str, classifier: bool) -> None:
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper

    n = _features(model)
    if getattr(model, "_in_fit", False):
        raise Invalid(f"{where}: is marked as still being fitted")
    if getattr(model, "_preprocessor", None) is not None:
        raise Invalid(f"{where}: carries a categorical preprocessor (not supported)")
    k = len(_classes(model, where, at_least=2)) if classifier else 1
    per_iteration = 1 if k <= 2 else k
    declared = integer(model.n_trees_per_iteration_, child(where, "n_trees_per_iteration_"))
    if declared != per_iteration:
        raise Invalid(f"{where}: n_trees_per_iteration_ is {declared}, expected {per_iteration}")
    baseline = array(
        attr(model, "_baseline_prediction", where),
        child(where, "_baseline_prediction"),
        kinds="f",
        shape=(1, per_iteration),
        dtype=np.dtype(np.float64),
    )
    finite(baseline, child(where, "_baseline_prediction"))
    mapper = attr(model, "_bin_mapper", where)
    exact_type(mapper, _BinMapper, child(where, "_bin_mapper"))
    categorical = _categories(mapper, n, child(where, "_bin_mapper"))
    predictors = attr(model, "_predictors", where)
    if type(predictors) is not list or not predictors:
        raise Invalid(f"{where}: _predictors is not a list of iterations")
    for i, iteration in enumerate(predictors):
        at = _sub(model, "_predictors", i, where)
        if type(iteration) is not list or len(iteration) != per_iteration:
            raise Invalid(f"{at}: is not a list of {per_iteration} predictors")
        for j, predictor in enumerate(iteration):
            check_predictor(predictor, f"{at}[{j}]", n_features=n, categorical=categorical)
    _same_loss(model, where)


def _categories(mapper: Any, n: int, where: str) -> np.ndarray[Any, Any]:
    """Which features the bin mapper treats as categorical: none, since a model with
    categorical features carries a preprocessor SEML does not load."""
    flags = array(
        attr(mapper, "is_categorical_", where),
        child(where, "is_categorical_"),
        kinds="biu",
        shape=(n,),
    )
    if flags.any():
        raise Invalid(f"{where}: marks categorical features without a preprocessor")
    return flags.astype(bool)


def _bagging(model: Any, where: str, classifier: bool) -> None:
    n = _features(model)
    k = len(_classes(model, where)) if classifier else 0
    subs = attr(model, "estimators_", where)
    features = attr(model, "estimators_features_", where)
    if type(subs) is not list or type(features) is not list or not subs:
        raise Invalid(f"{where}: estimators_ and estimators_features_ are not lists")
    if len(subs) != len(features) or len(subs) != model.n_estimators:
        raise Invalid(
            f"{where}: has {len(subs)} estimators and {len(features)} feature sets, "
            f"expected {model.n_estimators}"
        )
    for i, (sub, columns) in enumerate(zip(subs, features, strict=True)):
        at = _sub(model, "estimators_", i, where)
        _sub_estimator(sub, at, classifier)
        cols = array(columns, _sub(model, "estimators_features_", i, where), kinds="iu", ndim=1)
        if (cols < 0).any() or (cols >= n).any():
            raise Invalid(f"{at}: uses feature columns outside the model's {n}")
        _same_features(sub, cols.size, at)
        if classifier:
            labels = array(sub.classes_, child(at, "classes_"), kinds="iuf", ndim=1)
            if ((labels < 0) | (labels >= k) | (labels != np.round(labels))).any():
                raise Invalid(f"{at}: classes_ are not class indices below {k}")


def _adaboost(model: Any, where: str, classifier: bool) -> None:
    n = _features(model)
    classes = _classes(model, where, at_least=2) if classifier else None
    subs = attr(model, "estimators_", where)
    if type(subs) is not list or not 1 <= len(subs) <= model.n_estimators:
        raise Invalid(f"{where}: estimators_ is not a list of 1 to {model.n_estimators}")
    _floats(
        attr(model, "estimator_weights_", where),
        child(where, "estimator_weights_"),
        (model.n_estimators,),
    )
    for i, sub in enumerate(subs):
        at = _sub(model, "estimators_", i, where)
        _sub_estimator(sub, at, classifier)
        _same_features(sub, n, at)
        if classes is not None and not np.array_equal(sub.classes_, classes):
            raise Invalid(f"{at}: has other classes than the model")


def _sub_estimator(sub: Any, where: str, classifier: bool) -> None:
    from sklearn.base import is_classifier

    _estimator(sub, where)
    if bool(is_classifier(sub)) != classifier:
        kind = "classifier" if classifier else "regressor"
        raise Invalid(f"{where}: is a {type(sub).__name__}, not a {kind}")


# --- linear models, naive Bayes, dummies, neural networks -----------------------------------


def _linear(model: Any, where: str, classifier: bool) -> None:
    n = _features(model)
    if classifier:
        k = len(_classes(model, where, at_least=2))
        rows = 1 if k == 2 else k
        coef = attr(model, "coef_", where)
        binary_vector = k == 2 and getattr(coef, "ndim", 0) == 1  # RidgeClassifier, binary
        _floats(coef, child(where, "coef_"), (n,) if binary_vector else (rows, n))
        _label_binarizer(model, where, required=False)
    else:
        rows = 1
        _floats(attr(model, "coef_", where), child(where, "coef_"), (n,))
    intercept = attr(model, "intercept_", where)
    at = child(where, "intercept_")
    if isinstance(intercept, np.ndarray):
        if intercept.shape not in ((rows,), ()):
            raise Invalid(f"{at}: has shape {intercept.shape}, expected ({rows},)")
        _floats(intercept, at, intercept.shape)
    else:
        number(intercept, at)


def _label_binarizer(model: Any, where: str, *, required: bool) -> None:
    from sklearn.preprocessing import LabelBinarizer

    binarizer: Any = getattr(model, "_label_binarizer", None)
    if binarizer is None and not required:
        return
    at = child(where, "_label_binarizer")
    exact_type(binarizer, LabelBinarizer, at)
    if not np.array_equal(attr(binarizer, "classes_", at), model.classes_):
        raise Invalid(f"{at}: has other classes than the model")
    k = len(model.classes_)
    choice(
        attr(binarizer, "y_type_", at), ["binary" if k == 2 else "multiclass"], child(at, "y_type_")
    )
    plain = binarizer.pos_label == 1 and binarizer.neg_label in (0, -1)
    if binarizer.sparse_input_ or binarizer.sparse_output or not plain:
        raise Invalid(f"{at}: is not a plain label binarizer")


def _gaussian_nb(model: Any, where: str, classifier: bool) -> None:
    del classifier
    n, k = _features(model), len(_classes(model, where))
    _floats(attr(model, "theta_", where), child(where, "theta_"), (k, n))
    var = _floats(attr(model, "var_", where), child(where, "var_"), (k, n))
    if (var <= 0).any():
        raise Invalid(f"{where}: var_ has a variance that is not positive")
    prior = _floats(attr(model, "class_prior_", where), child(where, "class_prior_"), (k,))
    if (prior < 0).any():
        raise Invalid(f"{where}: class_prior_ has a negative probability")


def _discrete_nb(model: Any, where: str, classifier: bool) -> None:
    del classifier
    n, k = _features(model), len(_classes(model, where))
    _floats(attr(model, "feature_log_prob_", where), child(where, "feature_log_prob_"), (k, n))
    _floats(attr(model, "class_log_prior_", where), child(where, "class_log_prior_"), (k,))


def _dummy(model: Any, where: str, classifier: bool) -> None:
    _single_output(model, where)
    if classifier:
        k = len(_classes(model, where))
        prior = _floats(attr(model, "class_prior_", where), child(where, "class_prior_"), (k,))
        if (prior < 0).any():
            raise Invalid(f"{where}: class_prior_ has a negative probability")
        if getattr(model, "sparse_output_", False):
            raise Invalid(f"{where}: has sparse output")
        if model.strategy == "constant" and model.constant not in model.classes_.tolist():
            raise Invalid(f"{where}: its constant is not one of its classes")
    else:
        _floats(attr(model, "constant_", where), child(where, "constant_"), (1, 1))


def _mlp(model: Any, where: str, classifier: bool) -> None:
    width = _features(model)
    coefs, intercepts = attr(model, "coefs_", where), attr(model, "intercepts_", where)
    if type(coefs) is not list or type(intercepts) is not list or len(coefs) != len(intercepts):
        raise Invalid(f"{where}: coefs_ and intercepts_ are not lists of one length")
    if not coefs or integer(model.n_layers_, child(where, "n_layers_")) != len(coefs) + 1:
        raise Invalid(f"{where}: n_layers_ does not match {len(coefs)} weight matrices")
    for i, (weights, bias) in enumerate(zip(coefs, intercepts, strict=True)):
        w = _floats(weights, _sub(model, "coefs_", i, where), (width, None))
        width = w.shape[1]
        _floats(bias, _sub(model, "intercepts_", i, where), (width,))
    if classifier:
        k = len(_classes(model, where, at_least=2))
        outputs, activation = (1, "logistic") if k == 2 else (k, "softmax")
        _label_binarizer(model, where, required=True)
    else:
        outputs, activation = 1, "identity"
    if width != outputs or model.n_outputs_ != outputs:
        raise Invalid(f"{where}: its last layer has {width} outputs, expected {outputs}")
    choice(model.out_activation_, [activation], child(where, "out_activation_"))


# --- support vector machines and neighbours ----------------------------------------------


def _libsvm(model: Any, where: str, classifier: bool) -> None:
    n = _features(model)
    if attr(model, "_sparse", where) is not False:
        raise Invalid(f"{where}: was fitted on sparse data (not supported)")
    choice(model.kernel, ["linear", "poly", "rbf", "sigmoid"], child(where, "kernel"))
    number(attr(model, "_gamma", where), child(where, "_gamma"))
    f64, i32 = np.dtype(np.float64), np.dtype(np.int32)
    vectors = array(
        attr(model, "support_vectors_", where),
        child(where, "support_vectors_"),
        kinds="f",
        dtype=f64,
        shape=(None, n),
    )
    finite(vectors, child(where, "support_vectors_"))
    count = vectors.shape[0]
    shape_fit = attr(model, "shape_fit_", where)
    if type(shape_fit) is not tuple or len(shape_fit) != 2 or shape_fit[1] != n:
        raise Invalid(f"{where}: shape_fit_ is not (samples, {n})")
    samples = integer(shape_fit[0], child(where, "shape_fit_[0]"), low=count)
    support = array(model.support_, child(where, "support_"), kinds="i", dtype=i32, shape=(count,))
    if (support < 0).any() or (support >= samples).any():
        raise Invalid(f"{where}: support_ indexes outside the {samples} training samples")
    if classifier:
        k = len(_classes(model, where, at_least=2))
        groups, rows, pairs = k, k - 1, k * (k - 1) // 2
    else:
        groups, rows, pairs = 2, 1, 1
    n_support = array(
        attr(model, "_n_support", where),
        child(where, "_n_support"),
        kinds="i",
        dtype=i32,
        shape=(groups,),
    )
    if classifier and ((n_support < 0).any() or int(n_support.sum()) != count):
        raise Invalid(f"{where}: _n_support {n_support.tolist()} does not add up to {count}")
    dual = _floats(model._dual_coef_, child(where, "_dual_coef_"), (rows, count))
    intercept = _floats(model._intercept_, child(where, "_intercept_"), (pairs,))
    del dual, intercept
    sizes = set()
    for name in ("_probA", "_probB"):
        values = array(attr(model, name, where), child(where, name), kinds="f", dtype=f64, ndim=1)
        finite(values, child(where, name))
        sizes.add(values.size)
    # Probability calibration: none at all, or one value per pair of classes in both arrays.
    if sizes not in ({0}, {pairs}):
        raise Invalid(f"{where}: _probA and _probB have {sorted(sizes)} values, expected {pairs}")


def _neighbors(model: Any, where: str, classifier: bool) -> None:
    n = _features(model)
    # Training points keep their dtype (integers stay integers); trees hold them as float64.
    points = array(
        attr(model, "_fit_X", where), child(where, "_fit_X"), kinds="iuf", shape=(None, n)
    )
    if points.dtype.kind == "f":
        finite(points, child(where, "_fit_X"))
    m = points.shape[0]
    integer(attr(model, "n_samples_fit_", where), child(where, "n_samples_fit_"), low=m, high=m)
    integer(model.n_neighbors, child(where, "n_neighbors"), low=1, high=m)
    choice(model.weights, ["uniform", "distance"], child(where, "weights"))
    if getattr(model, "outputs_2d_", False):
        raise Invalid(f"{where}: predicts several outputs")
    metric = choice(
        attr(model, "effective_metric_", where),
        ["euclidean", "manhattan", "chebyshev", "minkowski"],
        child(where, "effective_metric_"),
    )
    params = attr(model, "effective_metric_params_", where)
    p = None
    if type(params) is not dict or set(params) - {"p", "w"} or params.get("w") is not None:
        raise Invalid(f"{where}: effective_metric_params_ are not a plain p")
    if metric == "minkowski":
        p = number(params.get("p"), child(where, "effective_metric_params_['p']"))
        if p <= 0:
            raise Invalid(f"{where}: minkowski p is {p}")
    elif params.get("p") is not None:
        raise Invalid(f"{where}: effective_metric_params_ give p to {metric}")
    if classifier:
        k = len(_classes(model, where))
        labels = array(attr(model, "_y", where), child(where, "_y"), kinds="i", shape=(m,))
        if (labels < 0).any() or (labels >= k).any():
            raise Invalid(f"{where}: _y holds class indices outside its {k} classes")
    else:
        targets = array(attr(model, "_y", where), child(where, "_y"), kinds="iuf", shape=(m,))
        if targets.dtype.kind == "f":
            finite(targets, child(where, "_y"))
    method = choice(
        attr(model, "_fit_method", where),
        ["brute", "kd_tree", "ball_tree"],
        child(where, "_fit_method"),
    )
    tree = attr(model, "_tree", where)
    if method == "brute":
        if tree is not None:
            raise Invalid(f"{where}: brute-force search carries a tree")
    else:
        check_binary_tree(tree, child(where, "_tree"), points=points, metric=metric, p=p)


@functools.cache
def _registry() -> dict[str, _Check]:
    from sklearn import (
        dummy,
        ensemble,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        svm,
        tree,
    )

    checks: dict[type, _Check] = {
        tree.DecisionTreeClassifier: _decision_tree,
        tree.DecisionTreeRegressor: _decision_tree,
        tree.ExtraTreeClassifier: _decision_tree,
        tree.ExtraTreeRegressor: _decision_tree,
        ensemble.RandomForestClassifier: _forest("DecisionTreeClassifier"),
        ensemble.RandomForestRegressor: _forest("DecisionTreeRegressor"),
        ensemble.ExtraTreesClassifier: _forest("ExtraTreeClassifier"),
        ensemble.ExtraTreesRegressor: _forest("ExtraTreeRegressor"),
        ensemble.GradientBoostingClassifier: _gradient_boosting,
        ensemble.GradientBoostingRegressor: _gradient_boosting,
        ensemble.HistGradientBoostingClassifier: _hist_gradient_boosting,
        ensemble.HistGradientBoostingRegressor: _hist_gradient_boosting,
        ensemble.BaggingClassifier: _bagging,
        ensemble.BaggingRegressor: _bagging,
        ensemble.AdaBoostClassifier: _adaboost,
        ensemble.AdaBoostRegressor: _adaboost,
        naive_bayes.GaussianNB: _gaussian_nb,
        naive_bayes.MultinomialNB: _discrete_nb,
        naive_bayes.BernoulliNB: _discrete_nb,
        naive_bayes.ComplementNB: _discrete_nb,
        dummy.DummyClassifier: _dummy,
        dummy.DummyRegressor: _dummy,
        neural_network.MLPClassifier: _mlp,
        neural_network.MLPRegressor: _mlp,
        svm.SVC: _libsvm,
        svm.NuSVC: _libsvm,
        svm.SVR: _libsvm,
        svm.NuSVR: _libsvm,
        neighbors.KNeighborsClassifier: _neighbors,
        neighbors.KNeighborsRegressor: _neighbors,
    }
    linear = (
        "LinearRegression Ridge RidgeCV Lasso LassoCV ElasticNet ElasticNetCV Lars LarsCV "
        "LassoLars LassoLarsCV LassoLarsIC OrthogonalMatchingPursuit "
        "OrthogonalMatchingPursuitCV BayesianRidge ARDRegression HuberRegressor "
        "QuantileRegressor TheilSenRegressor SGDRegressor PassiveAggressiveRegressor "
        "LogisticRegression LogisticRegressionCV RidgeClassifier RidgeClassifierCV"
    )
    for name in linear.split():
        checks[getattr(linear_model, name)] = _linear
    checks[svm.LinearSVC] = _linear
    checks[svm.LinearSVR] = _linear
    return {qualname(cls): check for cls, check in checks.items()}
