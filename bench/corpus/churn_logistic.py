# Customer churn on synthetic subscription data, with a logistic regression
# trained by gradient descent in NumPy.
import numpy as np
import pandas as pd

rng = np.random.default_rng(21)
n = 8000
customers = pd.DataFrame({
    "tenure_months": rng.integers(1, 72, n),
    "monthly_charge": rng.uniform(20, 120, n).round(2),
    "support_calls": rng.poisson(1.5, n),
    "contract": rng.choice(["monthly", "annual", "two-year"], n, p=[0.55, 0.3, 0.15]),
    "autopay": rng.choice([0, 1], n, p=[0.4, 0.6]),
})
logit = (-1.0 - 0.04 * customers["tenure_months"] + 0.02 * customers["monthly_charge"]
         + 0.35 * customers["support_calls"] - 0.8 * customers["autopay"]
         + customers["contract"].map({"monthly": 0.9, "annual": -0.4, "two-year": -1.2}))
customers["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
print(customers.head())
print(f"Churn rate: {customers['churned'].mean():.2%}")

print(customers.groupby("contract")["churned"].mean().round(3))
print(customers.groupby("support_calls")["churned"].agg(["mean", "count"]).round(3))

X = pd.get_dummies(customers.drop(columns="churned"), columns=["contract"], drop_first=True, dtype=float)
X = (X - X.mean()) / X.std()
X.insert(0, "bias", 1.0)
y = customers["churned"].to_numpy()
print(X.columns.tolist())

idx = rng.permutation(n)
train_idx, test_idx = idx[:6000], idx[6000:]
Xtr, Xte = X.to_numpy()[train_idx], X.to_numpy()[test_idx]
ytr, yte = y[train_idx], y[test_idx]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def train_logistic(X, y, lr=0.1, epochs=1500):
    w = np.zeros(X.shape[1])
    for epoch in range(epochs):
        p = sigmoid(X @ w)
        grad = X.T @ (p - y) / len(y)
        w -= lr * grad
        if epoch % 500 == 0:
            loss = -np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))
            print(f"epoch {epoch}: loss {loss:.4f}")
    return w


w = train_logistic(Xtr, ytr)
for name, coef in zip(X.columns, w):
    print(f"{name:>20}: {coef: .4f}")

probs = sigmoid(Xte @ w)
pred = (probs >= 0.5).astype(int)
accuracy = (pred == yte).mean()
tp = ((pred == 1) & (yte == 1)).sum()
precision = tp / max(pred.sum(), 1)
recall = tp / max(yte.sum(), 1)
print(f"accuracy={accuracy:.4f} precision={precision:.4f} recall={recall:.4f}")
