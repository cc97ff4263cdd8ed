# DABench dev questions 586, 587, 588, 589, 593 over the call-centre group
# statistics table (20170413_000000_group_statistics.csv).
import os

import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
calls = pd.read_csv(os.path.join(DATA_DIR, "20170413_000000_group_statistics.csv"))
calls.columns = [c.strip() for c in calls.columns]
print(calls.columns.tolist())
print(calls.head())

total_abandoned = calls["num. calls abandoned"].sum()
print(f"Total abandoned calls: {total_abandoned}")


def to_seconds(value):
    h, m, s = (int(part) for part in value.split(":"))
    return h * 3600 + m * 60 + s


calls["wait_s"] = calls["avg. wait time"].apply(to_seconds)
calls["abandon_s"] = calls["avg. abandonment time"].apply(to_seconds)
print(calls[["wait_s", "abandon_s"]].describe().round(2))

r = calls["avg. num. agents talking"].corr(calls["wait_s"])
print(f"Correlation agents talking / wait time: {r:.4f}")

z = (calls["wait_s"] - calls["wait_s"].mean()) / calls["wait_s"].std()
print(f"Wait-time outliers (|z|>3): {(z.abs() > 3).sum()}")

offered = calls["num. calls answered"] + calls["num. calls abandoned"]
calls["abandon_rate"] = np.where(offered > 0, calls["num. calls abandoned"] / offered.replace(0, 1), 0.0)
calls["timestamp"] = pd.to_datetime(calls["timestamp"], format="%b %d  %Y %I:%M:%S %p")
at_eight = calls.loc[calls["timestamp"] == pd.Timestamp("2017-04-13 08:00:00"), "abandon_rate"]
print(f"Abandonment rate at 08:00: {at_eight.iloc[0]:.4f}")

total_wait = calls["wait_s"].sum()
calls["wait_share_%"] = calls["wait_s"] / total_wait * 100 if total_wait else 0.0
print(calls.nlargest(5, "wait_share_%")[["wait_s", "wait_share_%"]].round(3))

calls["hour"] = calls["timestamp"].dt.hour
hourly = calls.groupby("hour").agg(
    answered=("num. calls answered", "sum"),
    abandoned=("num. calls abandoned", "sum"),
    agents=("avg. num. agents staffed", "mean"),
)
print(hourly)
busiest = hourly["answered"].idxmax()
print(f"Busiest hour: {busiest}:00 with {hourly.loc[busiest, 'answered']} answered calls")
