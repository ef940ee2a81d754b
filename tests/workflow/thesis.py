"""The thesis's experiment (listings 5.2-5.4): scripts and corpora written at test time."""

from __future__ import annotations

import random
from pathlib import Path

LISTING_5_2_IDS = {
    "uis": "36b0c4d057e1bf9c0915e66330d18299d0f08c0c0f0340847cc879b3fbf73b4d",
    "uio": "c12e28fb1d8c4bb243d5e7622afd90fde92ddb53971be384b92c33a464c80451",
    "uib": "3011ffd02613bb0971fb14b3bcbfea54ab1141afcd78c06ca18337f29740abbc",
}

# Listing 5.3 (uis.py; uio.py and uib.py differ only in the organization's name).
COUNT_SCRIPT = """import os

path = '/home/jovyan/{org}'
files = []
for (dirpath, dirnames, filenames) in os.walk(path):
    for i in filenames:
        files.append(os.path.join(dirpath, i))
    break

count = 0
for i in files:
    f = open(i, 'r')
    for line in f:
        count += line.count('lorem')

f = open('/home/jovyan/{org}-count.txt', 'a')
f.write('{label}: ' + str(count) + '\\n')
f.close()
"""

# Listing 5.4.
FINAL_SCRIPT = """import os

path = '/home/jovyan/uis'
files = ['uis-count.txt', 'uio-count.txt', 'uib-count.txt']

result = ''
for i in files:
    f = open(i, 'r')
    for line in f:
        result += line + '\\n'

f = open('/home/jovyan/result.txt', 'a')
f.write(result)
f.close()
"""

LABELS = {"uis": "UiS", "uio": "UiO", "uib": "UiB"}
WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]


def write_scripts(home: Path) -> None:
    for org, label in LABELS.items():
        (home / f"{org}.py").write_text(COUNT_SCRIPT.format(org=org, label=label))
    (home / "final-result.py").write_text(FINAL_SCRIPT)


def write_corpus(directory: Path, files: int, lines: int, seed: int) -> int:
    """Random text; returns how many times 'lorem' occurs (the expected count)."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for n in range(files):
        text = "\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(lines)) + "\n"
        total += text.count("lorem")
        (directory / f"part-{n}.txt").write_text(text)
    return total
