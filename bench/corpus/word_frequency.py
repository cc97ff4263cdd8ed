# Word statistics over a synthetic corpus of product reviews; many small steps.
import re
from collections import Counter

import numpy as np
import pandas as pd

rng = np.random.default_rng(17)
positive = ["great", "excellent", "love", "fast", "reliable", "beautiful", "perfect", "happy"]
negative = ["broken", "slow", "terrible", "refund", "disappointed", "noisy", "cheap", "late"]
neutral = ["the", "product", "delivery", "battery", "screen", "box", "price", "was", "is", "and", "it", "very"]

reviews = []
for i in range(3000):
    stars = int(rng.integers(1, 6))
    pool = neutral * 3 + (positive if stars >= 4 else negative if stars <= 2 else positive[:3] + negative[:3])
    words = rng.choice(pool, int(rng.integers(5, 30)))
    reviews.append({"review_id": i, "stars": stars, "text": " ".join(words).capitalize() + "."})
df = pd.DataFrame(reviews)
print(df.head())
print(df["stars"].value_counts().sort_index())

df["n_words"] = df["text"].str.split().str.len()
print(df["n_words"].describe())
print(df.groupby("stars")["n_words"].mean().round(2))

tokens = [w for text in df["text"] for w in re.findall(r"[a-z]+", text.lower())]
print(f"{len(tokens)} tokens, {len(set(tokens))} distinct")

counts = Counter(tokens)
print(counts.most_common(15))

stopwords = {"the", "was", "is", "and", "it", "very"}
content = Counter({w: c for w, c in counts.items() if w not in stopwords})
print(content.most_common(10))

pos_share = df["text"].str.lower().str.count("|".join(positive))
neg_share = df["text"].str.lower().str.count("|".join(negative))
df["sentiment"] = (pos_share - neg_share) / df["n_words"]
print(df.groupby("stars")["sentiment"].mean().round(4))

r = df["stars"].corr(df["sentiment"])
print(f"Correlation stars/sentiment: {r:.4f}")

bigrams = Counter(zip(tokens, tokens[1:]))
print(bigrams.most_common(5))

vocab_by_star = df.groupby("stars")["text"].apply(lambda s: len(set(" ".join(s).lower().split())))
print(vocab_by_star)

longest = df.loc[df["n_words"].idxmax()]
print(f"Longest review ({longest['n_words']} words, {longest['stars']} stars)")
print(longest["text"][:80])
