# DABench dev questions 24, 25, 26, 27, 30 over insurance.csv: summary
# statistics, normality of BMI, correlations, outliers and a linear model.
import os

import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
data = pd.read_csv(os.path.join(DATA_DIR, "insurance.csv"))
print(data.head())
print(data.describe())

mean_age = data["age"].mean()
print(f"@mean_age[{mean_age:.2f}]")

# Normality of BMI through skewness and excess kurtosis
bmi = data["bmi"]
skew = bmi.skew()
kurt = bmi.kurt()
print(f"BMI skewness: {skew:.4f}, kurtosis: {kurt:.4f}")
print("BMI looks normal" if abs(skew) < 0.5 and abs(kurt) < 1 else "BMI is not normal")

corr = data["charges"].corr(data["children"])
print(f"Correlation charges/children: {corr:.4f}")

# Z-score outliers in charges
z = (data["charges"] - data["charges"].mean()) / data["charges"].std()
outliers = data[z.abs() > 3]
print(f"Outliers in charges: {len(outliers)}")
print(outliers.sort_values("charges", ascending=False).head())

print(data.groupby("smoker")["charges"].agg(["mean", "median", "count"]).round(2))
print(data.groupby(["region", "sex"])["charges"].mean().unstack().round(1))


def train_test_split(frame, test_size=0.2, seed=42):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(frame))
    n_test = int(len(frame) * test_size)
    return frame.iloc[idx[n_test:]], frame.iloc[idx[:n_test]]


def fit_linear(X, y):
    X1 = np.column_stack([np.ones(len(X)), X])
    coef, *_ = np.linalg.lstsq(X1, y, rcond=None)
    return coef


train, test = train_test_split(data)
print(len(train), len(test))
features = ["age", "bmi"]
coef = fit_linear(train[features].to_numpy(), train["charges"].to_numpy())
print("Intercept and coefficients:", np.round(coef, 3))

X_test = np.column_stack([np.ones(len(test)), test[features].to_numpy()])
pred = X_test @ coef
rmse = np.sqrt(np.mean((test["charges"].to_numpy() - pred) ** 2))
print(f"@model_rmse[{rmse:.2f}]")
