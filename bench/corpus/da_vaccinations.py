# DABench dev questions 123, 124, 125 over country_vaccinations.csv.
import os

import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
vacc = pd.read_csv(os.path.join(DATA_DIR, "country_vaccinations.csv"), parse_dates=["date"])
print(vacc.shape)
print(vacc.dtypes)
print(vacc.isna().mean().round(3))

per_million = vacc.groupby("country")["daily_vaccinations_per_million"].mean().dropna()
print(per_million.sort_values(ascending=False).head(10).round(1))
print(f"Highest average: {per_million.idxmax()}")

latest = vacc.sort_values("date").groupby("country").tail(1)
print(latest[["country", "date", "total_vaccinations_per_hundred"]].head())

vacc["vaccines"] = vacc["vaccines"].astype(str)
groups = {}
for vaccine_set, frame in vacc.dropna(subset=["total_vaccinations_per_hundred"]).groupby("vaccines"):
    groups[vaccine_set] = frame["total_vaccinations_per_hundred"].to_numpy()
sizes = {k: len(v) for k, v in groups.items()}
print(sorted(sizes.items(), key=lambda kv: -kv[1])[:8])

# One-way ANOVA F statistic by hand over the vaccine combinations
big = {k: v for k, v in groups.items() if len(v) >= 20}
grand = np.concatenate(list(big.values()))
ss_between = sum(len(v) * (v.mean() - grand.mean()) ** 2 for v in big.values())
ss_within = sum(((v - v.mean()) ** 2).sum() for v in big.values())
df_b, df_w = len(big) - 1, len(grand) - len(big)
f_stat = (ss_between / df_b) / (ss_within / df_w)
print(f"ANOVA over {len(big)} vaccine groups: F={f_stat:.3f} (df={df_b}, {df_w})")

cols = ["total_vaccinations", "people_vaccinated", "people_fully_vaccinated_per_hundred"]
model_df = vacc.dropna(subset=cols)
print(f"Rows for regression: {len(model_df)}")
X = np.column_stack([np.ones(len(model_df)), model_df["total_vaccinations"], model_df["people_vaccinated"]])
y = model_df["people_fully_vaccinated_per_hundred"].to_numpy()
beta, *_ = np.linalg.lstsq(X, y, rcond=None)
pred = X @ beta
r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
print(f"coefficients: {beta}")
print(f"@R_squared[{r2:.4f}]")
