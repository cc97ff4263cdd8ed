# DABench dev questions 542, 543, 549, 550 over abalone.csv: length statistics,
# correlations, a volume feature, min-max scaling and a regression of rings.
import os

import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
abalone = pd.read_csv(os.path.join(DATA_DIR, "abalone.csv"))
print(abalone.shape)
print(abalone.describe().round(3))

print(f"Mean length: {abalone['Length'].mean():.4f}")
print(f"Correlation diameter/rings: {abalone['Diameter'].corr(abalone['Rings']):.4f}")
print(f"Correlation length/whole weight: {abalone['Length'].corr(abalone['Whole weight']):.4f}")

abalone["Volume"] = abalone["Length"] * abalone["Diameter"] * abalone["Height"]
print(abalone["Volume"].describe())
print(f"Correlation volume/rings: {abalone['Volume'].corr(abalone['Rings']):.4f}")

print("Missing values:", abalone.isnull().sum().sum())
cols = ["Length", "Diameter", "Height", "Whole weight", "Shucked weight", "Viscera weight", "Shell weight"]
scaled = abalone.copy()
for col in cols:
    lo, hi = abalone[col].min(), abalone[col].max()
    scaled[col] = (abalone[col] - lo) / (hi - lo)
print(scaled[cols].describe().loc[["min", "max", "mean"]].round(4))


def age_group(rings):
    if rings <= 8:
        return "young"
    if rings <= 14:
        return "adult"
    return "old"


abalone["AgeGroup"] = abalone["Rings"].apply(age_group)
print(abalone["AgeGroup"].value_counts())
print(abalone.groupby(["Sex", "AgeGroup"])["Whole weight"].mean().unstack().round(4))

# Linear regression of rings on the scaled features, with one-hot sex
X = pd.get_dummies(scaled[cols + ["Sex"]], columns=["Sex"], dtype=float)
X.insert(0, "const", 1.0)
y = abalone["Rings"].to_numpy(dtype=float)
rng = np.random.default_rng(0)
perm = rng.permutation(len(X))
cut = int(0.7 * len(X))
train_idx, test_idx = perm[:cut], perm[cut:]
beta, *_ = np.linalg.lstsq(X.to_numpy()[train_idx], y[train_idx], rcond=None)
for name, b in zip(X.columns, beta):
    print(f"  {name:>15}: {b:9.4f}")
pred = X.to_numpy()[test_idx] @ beta
rmse = np.sqrt(np.mean((y[test_idx] - pred) ** 2))
print(f"@rmse[{rmse:.4f}]")
