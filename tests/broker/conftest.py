import sys
from pathlib import Path

# hubfixture.py is a helper module next to the tests, not a package.
sys.path.insert(0, str(Path(__file__).parent))
