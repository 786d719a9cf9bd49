"""A fixed, deterministic set of news-like texts (no external data): the agreement check's input."""

import random

SUBJECTS = ["The central bank", "A startup in Berlin", "The national team", "Researchers", "The health ministry", "Parliament",
            "An oil company", "The film studio", "Climate scientists", "The university", "A chipmaker", "The striker"]
VERBS = ["announced", "warned about", "celebrated", "rejected", "unveiled", "delayed", "investigated", "won", "cut", "doubled"]
OBJECTS = ["interest rates", "a new vaccine", "the championship final", "a carbon tax", "its quarterly earnings", "a data breach",
           "the election results", "a box-office record", "rising sea levels", "tuition fees", "a faster processor", "a transfer deal"]
TAILS = ["on Monday", "amid criticism", "after months of talks", "despite a weak economy", "in a surprise move", "", "ahead of the summit"]


def fixed_texts(n: int = 1000, seed: int = 20261126) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}".strip() + f" ({i})" for i in range(n)]
