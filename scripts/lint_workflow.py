"""`snakemake --lint`: any lint fails the check (every rule names its conda environment, envs/), and so does a
workflow that does not parse."""

import subprocess
import sys

run = subprocess.run(["snakemake", "--lint", "--cores", "1"], capture_output=True, text=True)
text = (run.stdout + run.stderr).strip()
if run.returncode != 0 or "Lints for" in text:
    sys.exit(text)
print(f"snakemake --lint: {text.splitlines()[-1] if text else 'clean'}")
