# DABench dev questions 71, 73, 75, 77 over microsoft.csv: volume statistics,
# daily returns and the monthly average closing price.
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
msft = pd.read_csv(os.path.join(DATA_DIR, "microsoft.csv"), index_col=0)
print(msft.head())
print(msft.dtypes)

print(f"Mean volume: {msft['Volume'].mean():.2f}")
print(f"Std volume: {msft['Volume'].std():.2f}")
print(f"Correlation High/Low: {msft['High'].corr(msft['Low']):.4f}")

msft["Date"] = pd.to_datetime(msft["Date"], format="%d-%b-%y")
msft = msft.sort_values("Date").reset_index(drop=True)
print(msft[["Date", "Close"]].head())

msft["Daily Return"] = msft["Close"].pct_change() * 100
print(f"Mean daily return: {msft['Daily Return'].mean():.4f}%")
print(f"Std daily return: {msft['Daily Return'].std():.4f}%")
print(msft.nlargest(5, "Daily Return")[["Date", "Close", "Daily Return"]])

msft["Month"] = msft["Date"].dt.month
msft["Year"] = msft["Date"].dt.year
monthly = msft.groupby(["Year", "Month"])["Close"].mean()
print(monthly.round(2))
best = monthly.idxmax()
print(f"Highest average close: {best} -> {monthly.max():.2f}")

msft["MA20"] = msft["Close"].rolling(20).mean()
msft["Volatility"] = msft["Daily Return"].rolling(20).std() * np.sqrt(252)
print(msft[["Close", "MA20", "Volatility"]].tail(10).round(3))

fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
ax1.plot(msft["Date"], msft["Close"], label="Close")
ax1.plot(msft["Date"], msft["MA20"], label="20-day MA")
ax1.legend()
ax1.set_title("Microsoft closing price")
ax2.bar(msft["Date"], msft["Volume"], color="gray")
ax2.set_title("Volume")
plt.tight_layout()
plt.show()
