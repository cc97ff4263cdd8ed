# Web analytics over 2 million synthetic page views. Building the frame and the
# first aggregation is the long-running cell, right at the start.
import numpy as np
import pandas as pd

rng = np.random.default_rng(31)
n = 2_000_000
views = pd.DataFrame({
    "user": rng.integers(0, 150_000, n),
    "page": rng.choice(["home", "search", "product", "cart", "checkout", "help"], n, p=[0.3, 0.25, 0.25, 0.1, 0.05, 0.05]),
    "seconds": rng.exponential(40, n).round(1),
    "hour": rng.integers(0, 24, n),
})
per_user = views.groupby("user").agg(pages=("page", "size"), time=("seconds", "sum"))
print(views.shape, per_user.shape)

print(per_user.describe().round(2))
print(views["page"].value_counts(normalize=True).round(4))
print(views.groupby("page")["seconds"].median())
print(views.groupby("hour").size().idxmax())
heavy = per_user[per_user["pages"] >= 25]
print(len(heavy))
print(round(heavy["time"].mean(), 2))
funnel = views.groupby("page")["user"].nunique()
print(funnel)
print(round(funnel["checkout"] / funnel["home"], 4))
print(round(funnel["cart"] / funnel["product"], 4))
bounce = (per_user["pages"] == 1).mean()
print(f"bounce rate: {bounce:.4%}")
print(per_user["time"].quantile([0.5, 0.9, 0.99]).round(1))
