# Monthly airline-style passenger series (synthetic): trend and seasonality by
# hand, a naive seasonal forecast and its error on a hold-out year.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(12)
months = pd.date_range("2012-01-01", periods=144, freq="MS")
trend = np.linspace(120, 460, 144)
season = 1 + 0.18 * np.sin(2 * np.pi * (np.arange(144) % 12 - 3) / 12)
passengers = pd.Series((trend * season * rng.normal(1, 0.03, 144)).round(), index=months, name="passengers")
print(passengers.head(13))
print(passengers.describe().round(2))

yearly = passengers.groupby(passengers.index.year).sum()
print(yearly)
print((yearly.pct_change() * 100).round(2))

train = passengers[:-12]
test = passengers[-12:]
print(len(train), len(test))

centered = train.rolling(12, center=True).mean()
ratio = train / centered
seasonal_index = ratio.groupby(ratio.index.month).mean()
seasonal_index = seasonal_index / seasonal_index.mean()
print(seasonal_index.round(4))

deseason = train / seasonal_index.reindex(train.index.month).to_numpy()
t = np.arange(len(train))
slope, intercept = np.polyfit(t, deseason.to_numpy(), 1)
print(f"trend: {intercept:.2f} + {slope:.3f} * t")

future_t = np.arange(len(train), len(train) + 12)
forecast = (intercept + slope * future_t) * seasonal_index.reindex(test.index.month).to_numpy()
forecast = pd.Series(forecast, index=test.index)
naive = pd.Series(train[-12:].to_numpy(), index=test.index)


def mape(actual, predicted):
    return float(np.mean(np.abs((actual - predicted) / actual)) * 100)


print(f"Seasonal-trend MAPE: {mape(test, forecast):.2f}%")
print(f"Seasonal naive MAPE: {mape(test, naive):.2f}%")
comparison = pd.DataFrame({"actual": test, "forecast": forecast.round(1), "naive": naive})
print(comparison)

fig, ax = plt.subplots(figsize=(11, 5))
ax.plot(passengers.index, passengers, label="actual")
ax.plot(forecast.index, forecast, label="seasonal-trend forecast", linestyle="--")
ax.plot(naive.index, naive, label="seasonal naive", linestyle=":")
ax.set_title("Passenger forecast for the final year")
ax.legend()
plt.show()
