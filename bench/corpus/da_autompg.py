# DABench dev questions 719, 721, 722, 723, 724, 727 over auto-mpg.csv.
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
cars = pd.read_csv(os.path.join(DATA_DIR, "auto-mpg.csv"))
cars.columns = [c.strip() for c in cars.columns]
print(cars.head())
print(cars.dtypes)

cars["horsepower"] = pd.to_numeric(cars["horsepower"], errors="coerce")
print("Missing horsepower:", cars["horsepower"].isna().sum())
cars["horsepower"] = cars["horsepower"].fillna(cars["horsepower"].mean())

print(f"mpg mean={cars['mpg'].mean():.2f} median={cars['mpg'].median():.2f}")
print(f"Correlation mpg/weight: {cars['mpg'].corr(cars['weight']):.4f}")

strongest = cars.loc[cars["horsepower"].idxmax()]
print(f"Highest horsepower: {strongest['horsepower']} (model year {int(strongest['modelyear'])})")
same_year = cars[cars["modelyear"] == strongest["modelyear"]]["horsepower"]
print(f"Same-year horsepower mean={same_year.mean():.2f} std={same_year.std():.2f}")

cars["power_to_weight"] = cars["horsepower"] / cars["weight"]
print(f"power-to-weight mean={cars['power_to_weight'].mean():.4f} std={cars['power_to_weight'].std():.4f}")

z = (cars["acceleration"] - cars["acceleration"].mean()) / cars["acceleration"].std()
outliers = cars[z.abs() > 3]
print(f"Acceleration outliers: {len(outliers)}")
cleaned = cars[z.abs() <= 3]
print(f"After removal: mean={cleaned['acceleration'].mean():.2f} std={cleaned['acceleration'].std():.2f}")

by_cyl = cars.groupby("cylinders").agg(mpg=("mpg", "mean"), hp=("horsepower", "mean"), n=("mpg", "size"))
print(by_cyl.round(2))

rng = np.random.default_rng(42)
idx = rng.permutation(len(cars))
split = int(0.8 * len(cars))
train, test = cars.iloc[idx[:split]], cars.iloc[idx[split:]]


def design(frame):
    return np.column_stack([np.ones(len(frame)), frame["weight"], frame["acceleration"]])


beta, *_ = np.linalg.lstsq(design(train), train["mpg"].to_numpy(), rcond=None)
pred = design(test) @ beta
mse = np.mean((test["mpg"].to_numpy() - pred) ** 2)
print(f"coefficients={np.round(beta, 5)}")
print(f"@mse[{mse:.2f}]")

fig, ax = plt.subplots(figsize=(7, 5))
ax.scatter(test["mpg"], pred, alpha=0.6)
lims = [test["mpg"].min(), test["mpg"].max()]
ax.plot(lims, lims, "r--")
ax.set_xlabel("actual mpg")
ax.set_ylabel("predicted mpg")
ax.set_title("mpg ~ weight + acceleration")
fig.savefig("autompg_predictions.png", dpi=80)
print("saved autompg_predictions.png")
