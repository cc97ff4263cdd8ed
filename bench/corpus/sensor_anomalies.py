# Synthetic IoT temperature sensors: rolling statistics and anomaly detection.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(2024)
index = pd.date_range("2024-03-01", periods=24 * 60 * 7, freq="min")
frames = []
for sensor_id, base in enumerate([21.0, 23.5, 19.0]):
    minute_of_day = np.asarray(index.hour * 60 + index.minute)
    daily = 2.5 * np.sin(2 * np.pi * minute_of_day / 1440)
    noise = rng.normal(0, 0.3, len(index))
    values = base + daily + noise
    spikes = rng.choice(len(index), 15, replace=False)
    values[spikes] += rng.choice([-6, 6], 15)
    frames.append(pd.DataFrame({"time": index, "sensor": f"S{sensor_id}", "temp": values}))
readings = pd.concat(frames, ignore_index=True)
print(readings.shape)
print(readings.head())

print(readings.groupby("sensor")["temp"].describe().round(3))

wide = readings.pivot(index="time", columns="sensor", values="temp")
print(wide.head())

rolling_mean = wide.rolling("30min").mean()
rolling_std = wide.rolling("30min").std()
z = (wide - rolling_mean) / rolling_std
anomalies = (z.abs() > 4).sum()
print("Anomalies per sensor:")
print(anomalies)

hourly = wide.resample("h").agg(["mean", "max"])
print(hourly.head(12).round(2))

events = z.abs().stack()
events = events[events > 4].sort_values(ascending=False)
print(events.head(10).round(2))

corr = wide.corr()
print(corr.round(3))


def longest_run_above(series, threshold):
    above = series > threshold
    runs = (above != above.shift()).cumsum()
    lengths = above.groupby(runs).sum()
    return int(lengths.max())


for sensor in wide.columns:
    print(sensor, "longest run above 24C:", longest_run_above(wide[sensor], 24.0), "minutes")

fig, ax = plt.subplots(figsize=(12, 4))
day = wide.loc["2024-03-02"]
for sensor in day.columns:
    ax.plot(day.index, day[sensor], lw=0.8, label=sensor)
ax.legend()
ax.set_title("Sensor readings on 2 March")
plt.show()
