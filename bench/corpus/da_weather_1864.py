# DABench dev questions 755, 756, 757, 759, 760 over weather_data_1864.csv.
import os

import matplotlib.pyplot as plt
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
weather = pd.read_csv(os.path.join(DATA_DIR, "weather_data_1864.csv"))
print(weather.head())
print(weather["obs_type"].value_counts())
print(weather["station"].nunique(), "stations")

print(f"Mean TMAX_F: {weather['TMAX_F'].mean():.2f}")
print(f"Correlation TMAX_F/obs_value: {weather['TMAX_F'].corr(weather['obs_value']):.4f}")

q1, q3 = weather["obs_value"].quantile([0.25, 0.75])
iqr = q3 - q1
mask = (weather["obs_value"] < q1 - 1.5 * iqr) | (weather["obs_value"] > q3 + 1.5 * iqr)
print(f"obs_value outliers (IQR): {mask.sum()}")

stats = weather.groupby("obs_type")["TMAX_F"].agg(median="median", low="min", high="max")
stats["range"] = stats["high"] - stats["low"]
print(stats.round(2))

missing = weather.groupby("station")["obs_value"].apply(lambda s: s.isna().sum())
print(missing[missing > 0])
print("Stations without missing values:", (missing == 0).sum())

weather["date"] = pd.to_datetime(weather["datetime_dt"])
weather["month"] = weather["date"].dt.month
tmax = weather[weather["obs_type"] == "TMAX"]
monthly = tmax.groupby(["station", "month"])["obs_value"].mean().unstack()
print(monthly.round(1))

station_means = tmax.groupby("station")["obs_value"].mean().sort_values()
print("Coldest station:", station_means.index[0], round(station_means.iloc[0], 2))
print("Warmest station:", station_means.index[-1], round(station_means.iloc[-1], 2))

fig, ax = plt.subplots(figsize=(10, 5))
for station, series in monthly.iterrows():
    ax.plot(series.index, series.values, marker="o", label=station)
ax.set_xlabel("Month")
ax.set_ylabel("Mean TMAX (tenths of degree C)")
ax.set_title("Monthly mean maximum temperature, 1864")
ax.legend(fontsize=7)
plt.show()
