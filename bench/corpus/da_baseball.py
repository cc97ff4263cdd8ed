# DABench dev questions 243, 244, 247, 249, 250 over baseball_data.csv.
import os

import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
players = pd.read_csv(os.path.join(DATA_DIR, "baseball_data.csv"))
print(players.shape)
print(players.columns.tolist())

print(f"Mean batting average: {players['batting_average'].mean():.3f}")

hr = players["number_of_home_runs"].dropna()
print(f"Home runs: skew={hr.skew():.3f} kurtosis={hr.kurt():.3f}")
print("Home runs look normal" if abs(hr.skew()) < 0.5 else "Home runs are not normal")

free_agency = players.groupby("indicator_of_free_agency_eligibility")["number_of_runs"].mean()
print(free_agency.round(2))

doubles = players["number_of_doubles"]
salary = players["salary_in_thousands_of_dollars"]
r = doubles.corr(salary)
print(f"r(doubles, salary) = {r:.4f}")

# Permutation test for the correlation instead of a parametric p-value
rng = np.random.default_rng(7)
sal = salary.to_numpy()
dbl = doubles.to_numpy()
null = np.array([np.corrcoef(dbl, rng.permutation(sal))[0, 1] for _ in range(2000)])
p_value = (np.abs(null) >= abs(r)).mean()
print(f"permutation p-value: {p_value:.4f}")

players["avg_minus_obp"] = players["batting_average"] - players["on_base_percentage"]
print(players["avg_minus_obp"].describe().round(4))

players["salary_band"] = pd.cut(salary, bins=[0, 500, 1500, 3000, np.inf], labels=["<500k", "500k-1.5M", "1.5M-3M", ">3M"])
print(players.groupby("salary_band", observed=True)[["number_of_hits", "number_of_home_runs"]].mean().round(1))

top = players.nlargest(10, "salary_in_thousands_of_dollars")
print(top[["salary_in_thousands_of_dollars", "batting_average", "number_of_home_runs"]])
