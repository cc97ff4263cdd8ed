# DABench dev questions 657, 659, 662, 663, 665 over YAHOO-BTC_USD_D.csv:
# price statistics, high/low correlation, price change features and a plot.
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
btc = pd.read_csv(os.path.join(DATA_DIR, "YAHOO-BTC_USD_D.csv"), parse_dates=["Date"])
print(btc.shape)
print(btc.head())
print(btc.isnull().sum())

btc = btc.fillna(btc.mean(numeric_only=True))
print("Missing after fill:", int(btc.isnull().sum().sum()))

print(f"Close: mean={btc['Close'].mean():.2f} median={btc['Close'].median():.2f} std={btc['Close'].std():.2f}")
print(f"High/Low correlation: {btc['High'].corr(btc['Low']):.4f}")

btc["Price Change"] = btc["Close"] - btc["Open"]
btc["Price Change %"] = btc["Price Change"] / btc["Open"] * 100
print(btc[["Price Change", "Price Change %"]].describe().round(3))
up_days = (btc["Price Change"] > 0).sum()
print(f"Up days: {up_days} of {len(btc)} ({up_days / len(btc):.1%})")

btc["Year"] = btc["Date"].dt.year
yearly = btc.groupby("Year").agg(open=("Open", "first"), close=("Close", "last"), high=("High", "max"))
yearly["return %"] = (yearly["close"] / yearly["open"] - 1) * 100
print(yearly.round(2))

log_ret = np.log(btc["Close"]).diff().dropna()
print(f"Annualised volatility: {log_ret.std() * np.sqrt(365):.4f}")
drawdown = btc["Close"] / btc["Close"].cummax() - 1
print(f"Max drawdown: {drawdown.min():.2%} on {btc.loc[drawdown.idxmin(), 'Date'].date()}")

plt.figure(figsize=(7, 7))
plt.scatter(btc["Low"], btc["High"], s=4, alpha=0.5)
plt.xlabel("Low")
plt.ylabel("High")
plt.title("Daily high vs low, BTC-USD")
plt.show()
