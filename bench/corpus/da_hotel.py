# DABench dev questions 506, 507, 508, 510, 514 over hotel_data.csv.
import os

import matplotlib.pyplot as plt
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
hotels = pd.read_csv(os.path.join(DATA_DIR, "hotel_data.csv"))
print(hotels.shape)
print(hotels.head())
print(hotels.isna().sum())

avg_reviews = hotels["review_count"].mean()
print(f"Average reviews per hotel: {avg_reviews:.2f}")

five_star = hotels[hotels["star_rating"] == 5]
print(f"Five-star hotels: {len(five_star)}")
print(five_star[["hotel_name", "city_name", "review_count"]].head())

r = hotels["review_count"].corr(hotels["bubble_score"])
print(f"Correlation review_count/bubble_score: {r:.4f}")

rated = hotels.dropna(subset=["star_rating"])
print(f"Correlation among rated hotels: {rated['review_count'].corr(rated['bubble_score']):.4f}")

popular = hotels[hotels["review_count"] >= 100]
brand_stars = popular.groupby("brand_name")["star_rating"].mean().sort_values(ascending=False)
print(brand_stars.head(10).round(3))
print(f"Best brand: {brand_stars.index[0]}")

city_reviews = hotels.groupby("city_name")["review_count"].agg(["mean", "median", "count"])
overall = hotels["review_count"].mean()
city_reviews["vs_overall"] = (city_reviews["mean"] / overall).round(2)
print(city_reviews.sort_values("mean", ascending=False).round(1))

type_table = pd.crosstab(hotels["city_name"], hotels["hotel_type"])
print(type_table)

stars = hotels["star_rating"].value_counts().sort_index()
fig, ax = plt.subplots(figsize=(8, 4))
stars.plot(kind="bar", ax=ax, color="darkorange")
ax.set_xlabel("Star rating")
ax.set_ylabel("Number of hotels")
ax.set_title("Hotels by star rating")
plt.tight_layout()
plt.show()
