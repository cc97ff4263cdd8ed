import numpy as np
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rng = np.random.default_rng(7)
n = 1_500_000
regions = np.array(["north", "south", "east", "west"])
df = pd.DataFrame({
    "day": pd.to_datetime("2025-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D"),
    "region": regions[rng.integers(0, 4, n)],
    "units": rng.poisson(3, n),
    "price": rng.gamma(2.0, 12.0, n).round(2),
})
df["revenue"] = df["units"] * df["price"]
print(f"{len(df):,} orders, total revenue {df['revenue'].sum():,.0f}")

by_region = df.groupby("region")["revenue"].agg(["sum", "mean", "count"]).sort_values("sum")
print(by_region.round(2))

daily = df.groupby("day")["revenue"].sum()
trend = daily.rolling(28, min_periods=1).mean()
print("best day:", daily.idxmax().date(), f"{daily.max():,.0f}")

# Does a higher price mean fewer units? A least-squares fit on a sample.
sample = df.sample(200_000, random_state=1)
slope, intercept = np.polyfit(sample["price"], sample["units"], 1)
print(f"units = {intercept:.3f} + {slope:.5f} * price")

def share_table(frame, column):
    totals = frame.groupby(column)["revenue"].sum()
    return (totals / totals.sum() * 100).round(1)

monthly = df.assign(month=df["day"].dt.month).pivot_table(
    index="month", columns="region", values="revenue", aggfunc="sum"
)
print(share_table(df, "region"))
print(monthly.pct_change().mean().round(4))

fig, ax = plt.subplots(figsize=(8, 3))
ax.plot(daily.index, daily.values, alpha=0.3, label="daily")
ax.plot(trend.index, trend.values, label="28-day mean")
ax.set_title("Revenue per day")
ax.legend()
fig.savefig("sales_trend.png", dpi=80)
print("saved sales_trend.png")
