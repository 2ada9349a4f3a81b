#!/usr/bin/env python3
"""Reference fit for the Newton logistic regression (actors/src/ml/logistic.rs).

Writes, next to this script:
- breast_cancer_std.csv: scikit-learn's breast-cancer data (569 rows, 30 features),
  standardised with the population standard deviation (StandardScaler, ddof=0), one header row
  (feature names, spaces as underscores) and a last column `label`: scikit-learn's target as
  it is (0 = malignant, 1 = benign), so the fit below is scikit-learn's own.
- logistic_breast_cancer.json: scikit-learn's LogisticRegression(C=1, solver="newton-cg",
  tol=1e-10) on it: intercept, coefficients (column order), the objective
  0.5*|w|^2 + C*sum(logloss) (intercept unpenalised) at that solution, and the versions used.

Numbers are written with repr (shortest round-trip), so Rust reads exactly what numpy held.
Run: python3 -m venv /tmp/pyml && /tmp/pyml/bin/pip install numpy scipy scikit-learn
     /tmp/pyml/bin/python actors/tests/reference/gen_logistic.py
"""
import json
import os
import platform

import numpy as np
import scipy
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
C = 1.0
TOL = 1e-10


def main():
    data = load_breast_cancer()
    x = StandardScaler().fit_transform(data.data)  # population standard deviation (ddof=0)
    y = data.target.astype(np.int64)
    names = [n.replace(" ", "_") for n in data.feature_names]

    with open(os.path.join(HERE, "breast_cancer_std.csv"), "w") as out:
        out.write(",".join(names + ["label"]) + "\n")
        for row, label in zip(x, y):
            out.write(",".join(repr(float(v)) for v in row) + f",{label}\n")

    model = LogisticRegression(C=C, solver="newton-cg", tol=TOL, max_iter=1000).fit(x, y)
    w = model.coef_[0]
    b = float(model.intercept_[0])
    z = x @ w + b
    objective = 0.5 * float(w @ w) + C * float(np.sum(np.logaddexp(0.0, z) - y * z))
    reference = {
        "data": "sklearn.datasets.load_breast_cancer, StandardScaler (population sd)",
        "model": f"LogisticRegression(C={C}, solver='newton-cg', tol={TOL})",
        "objective_definition": "0.5*|w|^2 + C*sum(log(1+exp(z)) - y*z), z = x.w + b",
        "c": C,
        "tol": TOL,
        "n_iter": int(model.n_iter_[0]),
        "columns": names,
        "intercept": b,
        "coefficients": [float(v) for v in w],
        "objective": objective,
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__,
        },
    }
    with open(os.path.join(HERE, "logistic_breast_cancer.json"), "w") as out:
        json.dump(reference, out, indent=2)
        out.write("\n")
    print(f"intercept {b!r}, coefficients {w[:5].tolist()} ..., objective {objective!r}")


if __name__ == "__main__":
    main()
