# Synthetic employee-satisfaction survey on a 1-5 Likert scale.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

rng = np.random.default_rng(5)
n = 1500
departments = ["Engineering", "Sales", "Support", "Marketing", "Finance"]
survey = pd.DataFrame({
    "respondent": range(1, n + 1),
    "department": rng.choice(departments, n, p=[0.35, 0.2, 0.2, 0.15, 0.1]),
    "tenure_years": rng.exponential(3.0, n).round(1),
    "remote": rng.choice(["yes", "no"], n, p=[0.4, 0.6]),
})
questions = ["workload", "manager", "growth", "pay", "culture"]
mood = rng.normal(0, 0.8, n)
for i, q in enumerate(questions):
    shift = mood + rng.normal(0, 0.6, n) + (survey["remote"] == "yes") * 0.3 - i * 0.1
    survey[q] = np.clip(np.round(3.2 + shift + rng.normal(0, 1, n)), 1, 5).astype(int)
print(survey.head(10))

print(survey[questions].describe().round(2))

survey["overall"] = survey[questions].mean(axis=1)
print(f"Overall satisfaction: {survey['overall'].mean():.3f}")

dept_scores = survey.groupby("department")[questions + ["overall"]].mean()
print(dept_scores.round(2))

counts = {q: survey[q].value_counts().sort_index() for q in questions}
dist = pd.DataFrame(counts).T.fillna(0)
dist_pct = dist.div(dist.sum(axis=1), axis=0) * 100
print(dist_pct.round(1))

top2 = (survey[questions] >= 4).mean() * 100
print("Top-2-box (%):")
print(top2.round(1))

survey["tenure_band"] = pd.cut(survey["tenure_years"], [0, 1, 3, 5, 100], labels=["<1", "1-3", "3-5", "5+"], include_lowest=True)
print(survey.pivot_table(index="tenure_band", columns="remote", values="overall", aggfunc="mean", observed=True).round(3))

cronbach_items = survey[questions]
k = len(questions)
alpha = k / (k - 1) * (1 - cronbach_items.var().sum() / cronbach_items.sum(axis=1).var())
print(f"Cronbach's alpha: {alpha:.3f}")

ax = dist_pct.plot(kind="barh", stacked=True, figsize=(9, 4), colormap="RdYlGn")
ax.set_xlabel("% of respondents")
ax.set_title("Answer distribution per question")
ax.legend(title="score", bbox_to_anchor=(1.0, 1.0))
plt.tight_layout()
plt.show()
