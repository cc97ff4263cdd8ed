# DABench dev questions 129, 132, 136, 174 over titanic.csv: fare statistics,
# skewness, Z-score outliers and the fare distribution of each class.
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
df = pd.read_csv(os.path.join(DATA_DIR, "titanic.csv"))
print(df.shape)
print(df.head())

# Basic statistics of the fare
mean_fare = df["Fare"].mean()
std_fare = df["Fare"].std()
print(f"Mean fare: {mean_fare:.2f}")
print(f"Std of fare: {std_fare:.2f}")

# Skewness of the fare distribution
skewness = df["Fare"].skew()
print(f"Skewness of fare: {skewness:.2f}")
if skewness > 1:
    print("The fare distribution is highly right-skewed")
elif skewness > 0.5:
    print("The fare distribution is moderately right-skewed")
else:
    print("The fare distribution is roughly symmetric")

# Outliers with the Z-score method
z_scores = (df["Fare"] - mean_fare) / std_fare
outliers = df[np.abs(z_scores) > 3]
print(f"Number of outliers: {len(outliers)}")
print(outliers[["Name", "Pclass", "Fare"]].sort_values("Fare", ascending=False).head(10))

# Distribution of the fare for each passenger class
for pclass in sorted(df["Pclass"].unique()):
    fares = df.loc[df["Pclass"] == pclass, "Fare"]
    print(f"Class {pclass}: mean={fares.mean():.2f}, median={fares.median():.2f}, std={fares.std():.2f}")

summary = df.groupby("Pclass")["Fare"].describe()
print(summary.round(2))

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for ax, pclass in zip(axes, [1, 2, 3]):
    df.loc[df["Pclass"] == pclass, "Fare"].plot.hist(bins=30, ax=ax, color="steelblue")
    ax.set_title(f"Fare distribution, class {pclass}")
    ax.set_xlabel("Fare")
plt.tight_layout()
plt.show()

print(f"@mean_fare[{mean_fare:.2f}] @std_fare[{std_fare:.2f}] @outliers[{len(outliers)}]")
