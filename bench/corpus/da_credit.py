# DABench dev questions 737-741, 743 over Credit.csv.
import os

import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
credit = pd.read_csv(os.path.join(DATA_DIR, "Credit.csv"), index_col=0)
print(credit.head())
print(credit.describe(include="all").T)

print(f"Income mean={credit['Income'].mean():.2f} std={credit['Income'].std():.2f}")
age = credit["Age"]
print(f"Age skew={age.skew():.4f} kurtosis={age.kurt():.4f}")
print(f"Limit/Balance correlation: {credit['Limit'].corr(credit['Balance']):.4f}")

z = (credit["Balance"] - credit["Balance"].mean()) / credit["Balance"].std()
print(f"Balance outliers (|z|>3): {(z.abs() > 3).sum()}")

credit["BalanceLimitRatio"] = credit["Balance"] / credit["Limit"]
print(credit["BalanceLimitRatio"].describe().round(4))
print(credit.nlargest(5, "BalanceLimitRatio")[["Income", "Limit", "Balance", "BalanceLimitRatio"]])

mode_edu = credit["Education"].mode()[0]
credit["Education"] = credit["Education"].fillna(mode_edu)
print(f"Education mode: {mode_edu}")

for col in ["Gender", "Student", "Married", "Ethnicity"]:
    print(credit.groupby(col)["Balance"].mean().round(2))

numeric = credit.select_dtypes("number")
corr = numeric.corr()["Balance"].drop("Balance").sort_values(ascending=False)
print(corr.round(3))

credit["IncomeBand"] = pd.qcut(credit["Income"], 4, labels=["low", "mid-low", "mid-high", "high"])
print(credit.groupby("IncomeBand", observed=True)[["Limit", "Balance"]].mean().round(1))
