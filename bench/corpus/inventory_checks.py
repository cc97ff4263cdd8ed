# Warehouse inventory audit: many small statements, the way an analyst pokes
# at a table one question at a time.
import numpy as np
import pandas as pd

rng = np.random.default_rng(101)
skus = [f"SKU-{i:04d}" for i in range(600)]
inventory = pd.DataFrame({
    "sku": skus,
    "category": rng.choice(["tools", "garden", "kitchen", "toys", "office"], 600),
    "warehouse": rng.choice(["A", "B", "C"], 600),
    "on_hand": rng.integers(0, 500, 600),
    "reorder_point": rng.integers(20, 120, 600),
    "unit_cost": rng.uniform(1, 80, 600).round(2),
    "weekly_demand": rng.gamma(2.0, 15.0, 600).round(1),
})
print(inventory.head())
print(len(inventory))
print(inventory.dtypes)
print(inventory["category"].nunique())
print(inventory["warehouse"].value_counts())
inventory["stock_value"] = inventory["on_hand"] * inventory["unit_cost"]
print(round(inventory["stock_value"].sum(), 2))
print(inventory.groupby("warehouse")["stock_value"].sum().round(2))
print(inventory.groupby("category")["stock_value"].sum().round(2))
out_of_stock = inventory[inventory["on_hand"] == 0]
print(len(out_of_stock))
below = inventory[inventory["on_hand"] < inventory["reorder_point"]]
print(len(below))
print(below.groupby("warehouse").size())
inventory["weeks_of_cover"] = inventory["on_hand"] / inventory["weekly_demand"]
print(inventory["weeks_of_cover"].describe().round(2))
slow = inventory[inventory["weeks_of_cover"] > 20]
print(len(slow))
print(round(slow["stock_value"].sum(), 2))
fast = inventory.nsmallest(10, "weeks_of_cover")
print(fast[["sku", "on_hand", "weekly_demand", "weeks_of_cover"]].round(2))
inventory["order_qty"] = np.maximum(0, np.ceil(inventory["weekly_demand"] * 4 - inventory["on_hand"]))
print(int(inventory["order_qty"].sum()))
order_cost = (inventory["order_qty"] * inventory["unit_cost"]).sum()
print(round(order_cost, 2))
print(inventory.groupby("category")["order_qty"].sum())
abc = inventory.sort_values("stock_value", ascending=False).reset_index(drop=True)
abc["cum_share"] = abc["stock_value"].cumsum() / abc["stock_value"].sum()
abc["class"] = np.where(abc["cum_share"] <= 0.8, "A", np.where(abc["cum_share"] <= 0.95, "B", "C"))
print(abc["class"].value_counts())
print(abc.groupby("class")["stock_value"].sum().round(2))
print(pd.crosstab(abc["category"], abc["class"]))
print(inventory["unit_cost"].median())
print(inventory["on_hand"].quantile([0.1, 0.5, 0.9]))
print(inventory.corr(numeric_only=True).round(2))
summary = inventory.groupby(["warehouse", "category"]).agg(skus=("sku", "count"), units=("on_hand", "sum"))
print(summary)
print(summary.unstack()["units"])
print("audit done")
