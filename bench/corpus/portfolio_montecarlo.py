# Monte Carlo simulation of a three-asset portfolio. The simulation is the
# long-running cell and comes early; the rest summarises its result.
import matplotlib.pyplot as plt
import numpy as np

rng = np.random.default_rng(99)
mu = np.array([0.07, 0.04, 0.10]) / 252
vol = np.array([0.18, 0.06, 0.30]) / np.sqrt(252)
corr = np.array([[1.0, 0.2, 0.6], [0.2, 1.0, 0.1], [0.6, 0.1, 1.0]])
cov = np.outer(vol, vol) * corr
chol = np.linalg.cholesky(cov)
weights = np.array([0.5, 0.3, 0.2])
n_paths, n_days = 4000, 252

shocks = rng.standard_normal((n_paths, n_days, 3)) @ chol.T
daily = shocks + mu
portfolio_daily = daily @ weights
paths = np.cumprod(1 + portfolio_daily, axis=1)
final = paths[:, -1]
print(f"Simulated {n_paths} paths of {n_days} days")

print(f"Mean final value: {final.mean():.4f}")
print(f"Median final value: {np.median(final):.4f}")
print(f"Std of final value: {final.std():.4f}")

var_95 = 1 - np.percentile(final, 5)
print(f"95% one-year VaR: {var_95:.2%}")
cvar_95 = 1 - final[final <= np.percentile(final, 5)].mean()
print(f"95% CVaR: {cvar_95:.2%}")

running_max = np.maximum.accumulate(paths, axis=1)
drawdowns = paths / running_max - 1
max_dd = drawdowns.min(axis=1)
print(f"Median max drawdown: {np.median(max_dd):.2%}")
print(f"Worst max drawdown: {max_dd.min():.2%}")

prob_loss = (final < 1).mean()
print(f"Probability of a loss after one year: {prob_loss:.2%}")

percentiles = np.percentile(paths, [5, 25, 50, 75, 95], axis=0)
print("Quartiles at day 126:", np.round(percentiles[:, 125], 4))

fig, ax = plt.subplots(figsize=(10, 5))
days = np.arange(1, n_days + 1)
ax.fill_between(days, percentiles[0], percentiles[4], alpha=0.2, label="5-95%")
ax.fill_between(days, percentiles[1], percentiles[3], alpha=0.4, label="25-75%")
ax.plot(days, percentiles[2], color="black", label="median")
ax.set_title("Simulated portfolio value")
ax.legend()
plt.show()
