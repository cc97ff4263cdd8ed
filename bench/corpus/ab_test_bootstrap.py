# Synthetic A/B test of a checkout page: conversion, revenue per user and a
# bootstrap confidence interval computed at the end (the heavy part).
import numpy as np
import pandas as pd

rng = np.random.default_rng(11)
n_per_arm = 40000
users = pd.DataFrame({
    "user_id": np.arange(2 * n_per_arm),
    "group": np.repeat(["control", "treatment"], n_per_arm),
    "device": rng.choice(["mobile", "desktop", "tablet"], 2 * n_per_arm, p=[0.55, 0.35, 0.10]),
})
base_rate = np.where(users["group"] == "control", 0.050, 0.056)
users["converted"] = rng.random(len(users)) < base_rate
users["revenue"] = np.where(users["converted"], rng.gamma(2.0, 30.0, len(users)), 0.0)
print(users.head())

summary = users.groupby("group").agg(users=("user_id", "count"), conversions=("converted", "sum"), revenue=("revenue", "sum"))
summary["rate"] = summary["conversions"] / summary["users"]
summary["arpu"] = summary["revenue"] / summary["users"]
print(summary.round(4))

p_c, p_t = summary.loc["control", "rate"], summary.loc["treatment", "rate"]
lift = (p_t - p_c) / p_c
print(f"Relative lift: {lift:.2%}")

pooled = summary["conversions"].sum() / summary["users"].sum()
se = np.sqrt(pooled * (1 - pooled) * (2 / n_per_arm))
z = (p_t - p_c) / se
print(f"z statistic: {z:.3f}")
print("Significant at 5%" if abs(z) > 1.96 else "Not significant at 5%")

by_device = users.pivot_table(index="device", columns="group", values="converted", aggfunc="mean")
by_device["lift"] = by_device["treatment"] / by_device["control"] - 1
print(by_device.round(4))

control_rev = users.loc[users["group"] == "control", "revenue"].to_numpy()
treat_rev = users.loc[users["group"] == "treatment", "revenue"].to_numpy()
diffs = []
for _ in range(1500):
    c = rng.choice(control_rev, len(control_rev))
    t = rng.choice(treat_rev, len(treat_rev))
    diffs.append(t.mean() - c.mean())
diffs = np.array(diffs)
low, high = np.percentile(diffs, [2.5, 97.5])
print(f"ARPU difference 95% CI: [{low:.4f}, {high:.4f}]")
print(f"P(treatment better) = {(diffs > 0).mean():.3f}")
