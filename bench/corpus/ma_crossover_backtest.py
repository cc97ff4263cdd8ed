# Moving-average crossover backtest on a synthetic price series, with a grid
# search over window lengths at the end (execution-heavy tail).
import numpy as np
import pandas as pd

rng = np.random.default_rng(3)
dates = pd.bdate_range("2015-01-01", "2024-12-31")
returns = rng.normal(0.0003, 0.012, len(dates))
prices = pd.Series(100 * np.exp(np.cumsum(returns)), index=dates, name="close")
print(prices.head())
print(f"{len(prices)} trading days, final price {prices.iloc[-1]:.2f}")


def backtest(series, fast, slow, cost=0.0005):
    fast_ma = series.rolling(fast).mean()
    slow_ma = series.rolling(slow).mean()
    position = (fast_ma > slow_ma).astype(float).shift(1).fillna(0.0)
    daily_ret = series.pct_change().fillna(0.0)
    trades = position.diff().abs().fillna(0.0)
    strat = position * daily_ret - trades * cost
    equity = (1 + strat).cumprod()
    return equity, int(trades.sum())


def sharpe(equity):
    r = equity.pct_change().dropna()
    return float(np.sqrt(252) * r.mean() / r.std()) if r.std() > 0 else 0.0


def max_drawdown(equity):
    return float((equity / equity.cummax() - 1).min())


equity, n_trades = backtest(prices, 20, 100)
print(f"20/100 strategy: final equity {equity.iloc[-1]:.4f}, trades {n_trades}")
print(f"Sharpe {sharpe(equity):.3f}, max drawdown {max_drawdown(equity):.2%}")

buy_hold = prices / prices.iloc[0]
print(f"Buy and hold: final {buy_hold.iloc[-1]:.4f}, Sharpe {sharpe(buy_hold):.3f}")

yearly = equity.resample("YE").last().pct_change().dropna()
print((yearly * 100).round(2))

results = []
for fast in range(5, 80, 5):
    for slow in range(30, 300, 10):
        if fast >= slow:
            continue
        eq, trades = backtest(prices, fast, slow)
        results.append({"fast": fast, "slow": slow, "final": eq.iloc[-1], "sharpe": sharpe(eq), "trades": trades})
grid = pd.DataFrame(results)
print(f"Tested {len(grid)} parameter pairs")
print(grid.sort_values("sharpe", ascending=False).head(10).round(4))
