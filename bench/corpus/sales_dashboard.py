# Synthetic retail sales: revenue by region, product and month, with a trend plot.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

np.random.seed(42)
n = 20000
regions = ["North", "South", "East", "West"]
products = ["Laptop", "Phone", "Tablet", "Monitor", "Headphones"]
prices = {"Laptop": 1200, "Phone": 800, "Tablet": 450, "Monitor": 300, "Headphones": 120}

sales = pd.DataFrame({
    "date": pd.to_datetime("2023-01-01") + pd.to_timedelta(np.random.randint(0, 365, n), unit="D"),
    "region": np.random.choice(regions, n, p=[0.3, 0.2, 0.25, 0.25]),
    "product": np.random.choice(products, n),
    "quantity": np.random.poisson(3, n) + 1,
    "discount": np.random.choice([0, 0.05, 0.1, 0.2], n, p=[0.6, 0.2, 0.15, 0.05]),
})
sales["unit_price"] = sales["product"].map(prices)
sales["revenue"] = sales["quantity"] * sales["unit_price"] * (1 - sales["discount"])
print(sales.head())
print(sales.describe().round(2))

print(f"Total revenue: ${sales['revenue'].sum():,.2f}")
print(f"Average order value: ${sales['revenue'].mean():,.2f}")

by_region = sales.groupby("region")["revenue"].sum().sort_values(ascending=False)
print(by_region.map("{:,.0f}".format))

by_product = sales.groupby("product").agg(units=("quantity", "sum"), revenue=("revenue", "sum"))
by_product["share"] = by_product["revenue"] / by_product["revenue"].sum()
print(by_product.sort_values("revenue", ascending=False).round(3))

sales["month"] = sales["date"].dt.to_period("M")
monthly = sales.pivot_table(index="month", columns="region", values="revenue", aggfunc="sum")
print(monthly.round(0))

growth = monthly.sum(axis=1).pct_change() * 100
print("Month-over-month growth (%):")
print(growth.round(2))

discount_effect = sales.groupby("discount")["quantity"].mean()
print(discount_effect.round(3))

top_days = sales.groupby("date")["revenue"].sum().nlargest(5)
print(top_days.round(2))

ax = monthly.plot(figsize=(10, 5), marker="o")
ax.set_title("Monthly revenue by region")
ax.set_ylabel("Revenue ($)")
plt.tight_layout()
plt.show()
