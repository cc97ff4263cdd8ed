# HR analytics on a synthetic employee table: pay bands, gender pay gap,
# and a box plot by level.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(64)
n = 3000
levels = ["L1", "L2", "L3", "L4", "L5"]
employees = pd.DataFrame({
    "employee_id": np.arange(10000, 10000 + n),
    "level": rng.choice(levels, n, p=[0.3, 0.3, 0.2, 0.15, 0.05]),
    "department": rng.choice(["Eng", "Ops", "Sales", "HR"], n, p=[0.45, 0.25, 0.2, 0.1]),
    "gender": rng.choice(["F", "M"], n),
    "years": rng.integers(0, 25, n),
})
base = employees["level"].map({"L1": 52000, "L2": 68000, "L3": 88000, "L4": 115000, "L5": 150000})
employees["salary"] = (base * (1 + 0.012 * employees["years"]) * rng.normal(1, 0.08, n)
                       * np.where(employees["gender"] == "F", 0.97, 1.0)).round(-2)
print(employees.head())
print(employees["salary"].describe().round(0))

pay = employees.groupby("level")["salary"].agg(["min", "median", "max", "count"])
print(pay)

dept_level = employees.pivot_table(index="department", columns="level", values="salary", aggfunc="median")
print(dept_level.round(0))

gap = employees.groupby(["level", "gender"])["salary"].median().unstack()
gap["gap_%"] = (1 - gap["F"] / gap["M"]) * 100
print(gap.round(1))
print(f"Unadjusted overall gap: {(1 - employees.loc[employees.gender == 'F', 'salary'].median() / employees.loc[employees.gender == 'M', 'salary'].median()) * 100:.2f}%")

X = pd.get_dummies(employees[["level", "department", "gender"]], drop_first=True, dtype=float)
X["years"] = employees["years"]
X.insert(0, "const", 1.0)
coef, *_ = np.linalg.lstsq(X.to_numpy(), np.log(employees["salary"].to_numpy()), rcond=None)
adjusted = dict(zip(X.columns, coef))
print(f"Adjusted gender effect (log points, M vs F): {adjusted['gender_M']:.4f}")

employees["z_in_level"] = employees.groupby("level")["salary"].transform(lambda s: (s - s.mean()) / s.std())
outliers = employees[employees["z_in_level"].abs() > 3]
print(f"Pay outliers within level: {len(outliers)}")

fig, ax = plt.subplots(figsize=(9, 5))
ax.boxplot([employees.loc[employees["level"] == lv, "salary"] for lv in levels])
ax.set_xticks(range(1, 6), levels)
ax.set_ylabel("salary")
ax.set_title("Salary by level")
plt.show()
