# Correlation structure of synthetic macroeconomic indicators, drawn as an
# annotated heatmap.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(4)
n = 240
growth = rng.normal(2.0, 1.5, n)
macro = pd.DataFrame({
    "gdp_growth": growth,
    "unemployment": 6 - 0.5 * growth + rng.normal(0, 0.6, n),
    "inflation": 2 + 0.3 * growth + rng.normal(0, 0.8, n),
    "interest_rate": 1.5 + 0.6 * growth + rng.normal(0, 0.7, n),
    "housing_starts": 1200 + 80 * growth + rng.normal(0, 90, n),
    "consumer_conf": 95 + 4 * growth + rng.normal(0, 5, n),
    "oil_price": 70 + rng.normal(0, 12, n),
}, index=pd.period_range("2004-01", periods=n, freq="M"))
print(macro.head())
print(macro.describe().round(2))

corr = macro.corr()
print(corr.round(2))

pairs = corr.where(np.triu(np.ones(corr.shape, dtype=bool), k=1)).stack()
print("Strongest pairs:")
print(pairs.abs().sort_values(ascending=False).head(5).round(3))

lagged = pd.DataFrame({f"gdp_lag{k}": macro["gdp_growth"].shift(k) for k in range(0, 7)})
lag_corr = lagged.corrwith(macro["unemployment"])
print(lag_corr.round(3))

fig, ax = plt.subplots(figsize=(8, 7))
im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_xticks(range(len(corr)), corr.columns, rotation=45, ha="right")
ax.set_yticks(range(len(corr)), corr.columns)
for i in range(len(corr)):
    for j in range(len(corr)):
        ax.text(j, i, f"{corr.iloc[i, j]:.2f}", ha="center", va="center", fontsize=8)
fig.colorbar(im)
ax.set_title("Indicator correlations")
plt.tight_layout()
plt.show()
