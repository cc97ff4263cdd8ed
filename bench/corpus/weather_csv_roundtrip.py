# Daily weather for five synthetic cities: write raw CSV files, read them back,
# clean them, save the cleaned table and a chart.
import glob

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(1234)
cities = {"Oslo": 6, "Madrid": 15, "Cairo": 22, "Lima": 19, "Toronto": 8}
days = pd.date_range("2022-01-01", "2023-12-31", freq="D")
for city, mean_temp in cities.items():
    season = 10 * np.sin(2 * np.pi * (days.day_of_year.to_numpy() - 100) / 365)
    if city == "Lima":
        season = -season / 2
    temp = mean_temp + season + rng.normal(0, 3, len(days))
    rain = np.where(rng.random(len(days)) < 0.3, rng.gamma(1.5, 4, len(days)), 0.0)
    raw = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "temp_c": temp.round(1), "rain_mm": rain.round(1)})
    gaps = rng.choice(len(raw), 20, replace=False)
    raw.loc[gaps, "temp_c"] = np.nan
    raw.to_csv(f"weather_raw_{city.lower()}.csv", index=False)
print(sorted(glob.glob("weather_raw_*.csv")))

frames = []
for path in sorted(glob.glob("weather_raw_*.csv")):
    frame = pd.read_csv(path, parse_dates=["date"])
    frame["city"] = path[len("weather_raw_"):-len(".csv")].title()
    frames.append(frame)
weather = pd.concat(frames, ignore_index=True)
print(weather.shape)
print(weather.isna().sum())

weather = weather.sort_values(["city", "date"])
weather["temp_c"] = weather.groupby("city")["temp_c"].transform(lambda s: s.interpolate(limit_direction="both"))
print("Missing after interpolation:", int(weather["temp_c"].isna().sum()))

weather["month"] = weather["date"].dt.month
climate = weather.pivot_table(index="month", columns="city", values="temp_c", aggfunc="mean")
print(climate.round(1))

rain = weather.groupby("city").agg(total_rain=("rain_mm", "sum"), rainy_days=("rain_mm", lambda s: (s > 0).sum()))
print(rain.round(1))

extremes = weather.loc[weather.groupby("city")["temp_c"].idxmax(), ["city", "date", "temp_c"]]
print(extremes)

weather.to_csv("weather_clean.csv", index=False)
check = pd.read_csv("weather_clean.csv")
print(check.shape, list(check.columns))

ax = climate.plot(figsize=(9, 5), marker=".")
ax.set_ylabel("Mean temperature (C)")
ax.set_title("Monthly climate, 2022-2023")
plt.savefig("climate.png", dpi=80)
print("saved climate.png")
