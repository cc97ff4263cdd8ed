# Exploratory plots of a synthetic clinical dataset: several figures in a row.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(77)
n = 2500
patients = pd.DataFrame({
    "age": rng.normal(52, 14, n).clip(18, 95).round(),
    "bmi": rng.lognormal(np.log(27), 0.15, n).round(1),
    "systolic": rng.normal(128, 16, n).round(),
    "cholesterol": rng.normal(200, 35, n).round(),
    "glucose": rng.gamma(9, 11, n).round(),
    "smoker": rng.choice([0, 1], n, p=[0.78, 0.22]),
})
patients["systolic"] += (patients["age"] - 50) * 0.4 + patients["smoker"] * 5
print(patients.describe().round(1))

numeric = ["age", "bmi", "systolic", "cholesterol", "glucose"]
fig, axes = plt.subplots(2, 3, figsize=(13, 7))
for ax, col in zip(axes.flat, numeric):
    ax.hist(patients[col], bins=40, color="slateblue", alpha=0.8)
    ax.axvline(patients[col].mean(), color="red", linestyle="--")
    ax.set_title(col)
axes.flat[-1].axis("off")
plt.tight_layout()
plt.show()

print(patients.groupby("smoker")[numeric].mean().round(2))

fig, ax = plt.subplots(figsize=(7, 5))
data = [patients.loc[patients["smoker"] == s, "systolic"] for s in (0, 1)]
ax.boxplot(data)
ax.set_xticks([1, 2], ["non-smoker", "smoker"])
ax.set_ylabel("systolic blood pressure")
plt.show()

patients["age_band"] = pd.cut(patients["age"], [17, 35, 50, 65, 100], labels=["18-35", "36-50", "51-65", "66+"])
band_bp = patients.groupby("age_band", observed=True)["systolic"].agg(["mean", "std", "count"])
print(band_bp.round(2))

hypertensive = (patients["systolic"] >= 140).mean()
print(f"Share with systolic >= 140: {hypertensive:.2%}")

fig, ax = plt.subplots(figsize=(7, 5))
ax.scatter(patients["age"], patients["systolic"], s=4, alpha=0.3, c=patients["smoker"], cmap="coolwarm")
slope, intercept = np.polyfit(patients["age"], patients["systolic"], 1)
xs = np.linspace(18, 95, 50)
ax.plot(xs, intercept + slope * xs, color="black")
ax.set_xlabel("age")
ax.set_ylabel("systolic")
ax.set_title(f"Blood pressure rises {slope:.2f} mmHg per year")
plt.show()
