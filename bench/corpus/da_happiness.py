# DABench dev questions 114, 116, 117, 118 over 2015.csv (World Happiness):
# top country, outliers, strongest correlate and a simple regression.
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
happiness = pd.read_csv(os.path.join(DATA_DIR, "2015.csv"))
print(happiness.columns.tolist())
print(happiness.head())

top = happiness.loc[happiness["Happiness Score"].idxmax()]
print(f"Happiest country: {top['Country']} ({top['Happiness Score']})")

q1 = happiness["Happiness Score"].quantile(0.25)
q3 = happiness["Happiness Score"].quantile(0.75)
iqr = q3 - q1
lower, upper = q1 - 1.5 * iqr, q3 + 1.5 * iqr
print(f"IQR bounds: [{lower:.3f}, {upper:.3f}]")
outliers = happiness[(happiness["Happiness Score"] < lower) | (happiness["Happiness Score"] > upper)]
print(f"Outlier countries: {outliers['Country'].tolist()}")

numeric = happiness.select_dtypes(include="number").drop(columns=["Happiness Rank", "Happiness Score"])
correlations = numeric.corrwith(happiness["Happiness Score"]).sort_values(ascending=False)
print(correlations.round(4))
strongest = correlations.abs().idxmax()
direction = "positive" if correlations[strongest] > 0 else "negative"
print(f"Strongest correlate: {strongest} ({direction}, r={correlations[strongest]:.4f})")

region_stats = happiness.groupby("Region")["Happiness Score"].agg(["mean", "min", "max", "count"])
print(region_stats.sort_values("mean", ascending=False).round(3))

x = happiness["Economy (GDP per Capita)"].to_numpy()
y = happiness["Health (Life Expectancy)"].to_numpy()
slope, intercept = np.polyfit(x, y, 1)
pred = slope * x + intercept
ss_res = np.sum((y - pred) ** 2)
ss_tot = np.sum((y - y.mean()) ** 2)
r2 = 1 - ss_res / ss_tot
print(f"slope={slope:.4f} intercept={intercept:.4f} R^2={r2:.4f}")
print("Good fit" if r2 >= 0.7 else "Poor fit")

plt.figure(figsize=(8, 6))
plt.scatter(x, y, alpha=0.7, label="countries")
order = np.argsort(x)
plt.plot(x[order], pred[order], color="red", label="linear fit")
plt.xlabel("GDP per capita")
plt.ylabel("Life expectancy score")
plt.title(f"GDP vs life expectancy (R^2 = {r2:.2f})")
plt.legend()
plt.show()
