"""`snakemake --lint`, less its advice to give every rule a conda environment or container.

Jobs run in the environment of the submitting shell (`.venv`, see the README): a conda environment built under
.snakemake/conda could not resolve this package's editable install. Every other lint fails the check, and so does
a workflow that does not parse.
"""

import re
import subprocess
import sys

CONDA = "Specify a conda environment or container for each rule."

run = subprocess.run(["snakemake", "--lint", "--cores", "1"], capture_output=True, text=True)
text = run.stdout + run.stderr
lints = re.findall(r"^    \* (.+)$", text, re.M)
if run.returncode == 0:
    print(text.strip())
elif lints and all(lint.startswith(CONDA) for lint in lints):
    print(f"snakemake --lint: no lint but {len(lints)} x {CONDA!r} (jobs use the submitting shell's environment)")
else:
    sys.exit(text)
