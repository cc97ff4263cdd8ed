# DABench dev questions 137, 520, 522 over titanic.csv: family size, travelling
# alone, and the title extracted from the name, against survival.
import os

import matplotlib.pyplot as plt
import pandas as pd

DATA_DIR = os.path.join(os.environ.get("EAGER_RT_DABENCH", "../shared/dabench"), "tables")
titanic = pd.read_csv(os.path.join(DATA_DIR, "titanic.csv"))
print(titanic.info())
print(titanic.isnull().sum())

# Family size and travelling alone
titanic["FamilySize"] = titanic["SibSp"] + titanic["Parch"] + 1
titanic["IsAlone"] = (titanic["FamilySize"] == 1).astype(int)
print(titanic["FamilySize"].value_counts().sort_index())

corr = titanic["FamilySize"].corr(titanic["Survived"])
print(f"Correlation between family size and survival: {corr:.4f}")

alone_rates = titanic.groupby("IsAlone")["Survived"].mean()
print("Survival rate by IsAlone:")
print(alone_rates.round(4))


def extract_title(name):
    """Return the honorific between the comma and the first dot."""
    title = name.split(",")[1].split(".")[0].strip()
    return title


titanic["Title"] = titanic["Name"].apply(extract_title)
print(titanic["Title"].value_counts())

common = ["Mr", "Mrs", "Miss", "Master"]
titanic["Title"] = titanic["Title"].where(titanic["Title"].isin(common), "Other")
title_survival = titanic.groupby("Title")["Survived"].agg(["mean", "count"])
print(title_survival.sort_values("mean", ascending=False).round(3))

# Median age per title, used to fill the missing ages
median_age = titanic.groupby("Title")["Age"].median()
print(median_age)
titanic["Age"] = titanic["Age"].fillna(titanic["Title"].map(median_age))
print("Missing ages after imputation:", titanic["Age"].isnull().sum())

pivot = titanic.pivot_table(index="Title", columns="Pclass", values="Survived", aggfunc="mean")
print(pivot.round(2))

ax = title_survival["mean"].sort_values().plot(kind="barh", color="teal", figsize=(8, 4))
ax.set_xlabel("Survival rate")
ax.set_title("Survival rate by title")
plt.tight_layout()
plt.show()
