# DABench dev questions 551, 552, 553, 554, 555 over tree.csv (forest plots).
import os

import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
trees = pd.read_csv(os.path.join(DATA_DIR, "tree.csv"))
print(trees.shape)
print(trees.head())
print(trees.describe().round(3))

print(f"Mean DBH_CM: {trees['DBH_CM'].mean():.3f}")
print(f"Correlation HT_M/BA_M2: {trees['HT_M'].corr(trees['BA_M2']):.4f}")

q1 = trees["TPH_PLT"].quantile(0.25)
q3 = trees["TPH_PLT"].quantile(0.75)
iqr = q3 - q1
n_out = ((trees["TPH_PLT"] < q1 - 1.5 * iqr) | (trees["TPH_PLT"] > q3 + 1.5 * iqr)).sum()
print(f"TPH_PLT outliers: {n_out}")

subset = trees[(trees["CON"] == 1) & (trees["PLTID"] == 5)]
print(f"Rows with CON=1 and PLTID=5: {len(subset)}")
if len(subset):
    print(f"Median HT_M there: {subset['HT_M'].median():.3f}")

counts = trees["SPP_SYMBOL"].value_counts()
print(f"Species with at least 5 observations: {(counts >= 5).sum()}")
print(counts.head(10))

species = trees.groupby("SCIENTIFIC_NAME").agg(
    n=("LIVE_ID", "count"),
    dbh=("DBH_CM", "mean"),
    height=("HT_M", "mean"),
    basal_area=("BA_M2", "sum"),
)
print(species.sort_values("n", ascending=False).head(12).round(2))

plots = trees.groupby("PLTID").agg(trees_per_plot=("LIVE_ID", "count"), basal=("BA_M2", "sum"))
print(plots.describe().round(3))
dense = plots[plots["trees_per_plot"] > plots["trees_per_plot"].quantile(0.9)]
print(f"Dense plots: {len(dense)}")

trees["size_class"] = pd.cut(trees["DBH_CM"], bins=[0, 20, 40, 60, 1000], labels=["small", "medium", "large", "huge"])
print(pd.crosstab(trees["size_class"], trees["CON"], margins=True))
