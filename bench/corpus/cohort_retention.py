# Monthly cohort retention for a synthetic subscription app, as a table and a heatmap.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(9)
signups = []
for month in pd.period_range("2023-01", "2023-12", freq="M"):
    n_users = int(rng.integers(800, 1500))
    churn = rng.uniform(0.12, 0.25)
    lifetimes = rng.geometric(churn, n_users)
    for user, lifetime in enumerate(lifetimes):
        signups.append((f"{month}-{user}", month, int(lifetime)))
users = pd.DataFrame(signups, columns=["user", "cohort", "lifetime"])
print(users.shape)
print(users.head())

activity = users.loc[users.index.repeat(users["lifetime"])].copy()
activity["age"] = activity.groupby("user").cumcount()
activity["month"] = activity["cohort"] + activity["age"]
activity = activity[activity["month"] <= pd.Period("2023-12", freq="M")]
print(activity.shape)

cohort_sizes = users.groupby("cohort").size()
counts = activity.groupby(["cohort", "age"]).size().unstack(fill_value=0)
retention = counts.div(cohort_sizes, axis=0)
print(retention.iloc[:, :6].round(3))

month3 = retention[3].dropna()
print(f"Average month-3 retention: {month3.mean():.2%}")
print(f"Best cohort at month 3: {month3.idxmax()}")

mau = activity.groupby("month")["user"].nunique()
print(mau)

ltv_months = users.groupby("cohort")["lifetime"].mean()
print((ltv_months * 9.99).round(2))

fig, ax = plt.subplots(figsize=(10, 6))
im = ax.imshow(retention.to_numpy(), cmap="Blues", aspect="auto", vmin=0, vmax=1)
ax.set_yticks(range(len(retention)), [str(c) for c in retention.index])
ax.set_xlabel("months since signup")
ax.set_title("Cohort retention")
fig.colorbar(im)
plt.show()
