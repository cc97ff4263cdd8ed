# Customer segmentation with k-means written in NumPy, on synthetic RFM data.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(8)
centers = np.array([[10, 2, 50], [60, 12, 400], [200, 1, 30], [30, 25, 1200]])
parts = [rng.normal(c, c * 0.25 + 1, size=(700, 3)) for c in centers]
rfm = pd.DataFrame(np.vstack(parts), columns=["recency", "frequency", "monetary"]).clip(lower=0)
print(rfm.describe().round(2))

scaled = (rfm - rfm.mean()) / rfm.std()
data = scaled.to_numpy()


def kmeans(X, k, n_iter=100, seed=0):
    r = np.random.default_rng(seed)
    cent = X[r.choice(len(X), k, replace=False)]
    for _ in range(n_iter):
        dist = ((X[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2)
        labels = dist.argmin(axis=1)
        new = np.array([X[labels == j].mean(axis=0) if np.any(labels == j) else cent[j] for j in range(k)])
        if np.allclose(new, cent):
            break
        cent = new
    inertia = ((X - cent[labels]) ** 2).sum()
    return labels, cent, inertia


inertias = {}
for k in range(2, 8):
    _, _, inertia = kmeans(data, k)
    inertias[k] = inertia
    print(f"k={k}: inertia={inertia:.1f}")

labels, cent, _ = kmeans(data, 4)
rfm["segment"] = labels
profile = rfm.groupby("segment").agg(["mean", "count"]).round(1)
print(profile)

sizes = rfm["segment"].value_counts().sort_index()
print(sizes)

fig, axes = plt.subplots(1, 2, figsize=(12, 5))
axes[0].plot(list(inertias), list(inertias.values()), marker="o")
axes[0].set_title("Elbow curve")
axes[0].set_xlabel("k")
for seg, frame in rfm.groupby("segment"):
    axes[1].scatter(frame["recency"], frame["monetary"], s=5, label=f"segment {seg}")
axes[1].set_xlabel("recency (days)")
axes[1].set_ylabel("monetary")
axes[1].legend()
plt.tight_layout()
plt.show()
