# DABench dev questions 666, 667, 668, 669, 671 over my_test_01.csv (a slice of
# the California housing data).
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
housing = pd.read_csv(os.path.join(DATA_DIR, "my_test_01.csv"))
print(housing.shape)
print(housing.describe().T.round(3))

value = housing["MedianHouseValue"]
print(f"MedianHouseValue mean={value.mean():.4f} std={value.std():.4f}")
print(f"MedInc skew={housing['MedInc'].skew():.4f} kurt={housing['MedInc'].kurt():.4f}")
print(f"Correlation HouseAge/value: {housing['HouseAge'].corr(value):.4f}")

q1, q3 = housing["MedInc"].quantile([0.25, 0.75])
iqr = q3 - q1
inliers = housing[(housing["MedInc"] >= q1 - 1.5 * iqr) & (housing["MedInc"] <= q3 + 1.5 * iqr)]
print(f"Removed {len(housing) - len(inliers)} MedInc outliers")
print(f"MedInc after: mean={inliers['MedInc'].mean():.4f} std={inliers['MedInc'].std():.4f}")

features = ["MedInc", "AveRooms", "Population", "Latitude", "Longitude"]
X = housing[features].to_numpy()
X = (X - X.mean(axis=0)) / X.std(axis=0)
X = np.column_stack([np.ones(len(X)), X])
y = value.to_numpy()


def k_fold_rmse(X, y, k=5, seed=0):
    idx = np.random.default_rng(seed).permutation(len(y))
    folds = np.array_split(idx, k)
    scores = []
    for i in range(k):
        test = folds[i]
        train = np.concatenate([folds[j] for j in range(k) if j != i])
        beta, *_ = np.linalg.lstsq(X[train], y[train], rcond=None)
        err = y[test] - X[test] @ beta
        scores.append(np.sqrt(np.mean(err**2)))
    return np.array(scores)


scores = k_fold_rmse(X, y)
print("fold RMSE:", np.round(scores, 4))
print(f"@cv_rmse[{scores.mean():.4f}]")

beta, *_ = np.linalg.lstsq(X, y, rcond=None)
for name, b in zip(["const", *features], beta):
    print(f"{name:>10}: {b: .4f}")

fig, ax = plt.subplots(figsize=(6, 6))
sc = ax.scatter(housing["Longitude"], housing["Latitude"], c=value, cmap="viridis", s=15)
fig.colorbar(sc, label="Median house value")
ax.set_title("House values by location")
plt.show()
