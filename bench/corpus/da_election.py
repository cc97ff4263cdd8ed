# DABench dev questions 139, 140, 142, 144 over election2016.csv.
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
election = pd.read_csv(os.path.join(DATA_DIR, "election2016.csv"))
print(election.shape)
print(election.head())

election["diff_votes"] = election["diff"].str.replace(",", "").astype(float)
election["pct_point_diff"] = election["per_point_diff"].str.rstrip("%").astype(float)
print(election[["diff_votes", "pct_point_diff"]].describe().round(2))

for col in ["per_dem", "per_gop"]:
    print(f"{col}: mean={election[col].mean():.4f} std={election[col].std():.4f} skew={election[col].skew():.3f}")

r = election["votes_dem"].corr(election["votes_gop"])
r_log = np.log1p(election["votes_dem"]).corr(np.log1p(election["votes_gop"]))
print(f"Pearson r (raw)={r:.4f} (log)={r_log:.4f}")
rank_r = election["votes_dem"].rank().corr(election["votes_gop"].rank())
print(f"Spearman rho={rank_r:.4f}")

r_diff = election["diff_votes"].corr(election["pct_point_diff"])
print(f"Correlation vote difference / point difference: {r_diff:.4f}")

by_state = election.groupby("state_abbr").agg(dem=("votes_dem", "sum"), gop=("votes_gop", "sum"), counties=("county_name", "count"))
by_state["dem_share"] = by_state["dem"] / (by_state["dem"] + by_state["gop"])
print(by_state.sort_values("dem_share", ascending=False).head(10).round(3))
print(f"States won by the Democrats: {(by_state['dem_share'] > 0.5).sum()}")

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].hist(election["per_dem"], bins=40, color="royalblue", alpha=0.8)
axes[0].set_title("Democratic vote share per county")
axes[1].scatter(np.log1p(election["votes_dem"]), np.log1p(election["votes_gop"]), s=3, alpha=0.4)
axes[1].set_xlabel("log votes (dem)")
axes[1].set_ylabel("log votes (gop)")
axes[1].set_title("County votes")
plt.tight_layout()
plt.show()
