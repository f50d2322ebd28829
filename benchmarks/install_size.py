"""Install size of each extra: fresh venvs with the pinned versions, measured on disk.

For each of the core install, ``[serve]``, ``[support]``, both, ``[postgresql]`` and all three
(a team's desk), a new venv gets
``pip install -c constraints.txt`` of this commit's source (a copy made with ``git archive``,
so no ``build/`` folder lands in the checkout), then its size (``du``), its package count,
the seconds it took, and whether ``bigramlm --help`` runs from it. With ``--resolve PYTHON``
each other interpreter only resolves the full install (``pip install --dry-run``): how
many packages, and whether torch comes as a CUDA build (``nvidia-*`` packages).

    python benchmarks/install_size.py [--python python3.11] [--resolve python3.13] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = {"core": "", "serve": "[serve]", "support": "[support]", "support+serve": "[support,serve]",
          "postgresql": "[postgresql]", "support+serve+postgresql": "[support,serve,postgresql]"}


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def source_copy(where: Path) -> Path:
    """This commit's tracked files, unpacked under ``where``."""
    src = where / "src-copy"
    src.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    return src


def measure(python: str, src: Path, extra: str, where: Path) -> dict:
    venv = where / f"venv{extra or '-core'}"
    start = time.perf_counter()
    run([python, "-m", "venv", str(venv)], check=True)
    pip = run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", "-c",
               str(ROOT / "constraints.txt"), f"{src}{extra}"])
    if pip.returncode != 0:
        raise SystemExit(f"pip install {extra or '(core)'} failed: {pip.stderr.strip().splitlines()[-1:]}")
    took = time.perf_counter() - start
    size = int(run(["du", "-sm", str(venv)]).stdout.split()[0])
    packages = len(run([str(venv / "bin" / "pip"), "list", "--format=freeze"]).stdout.splitlines())
    cli = run([str(venv / "bin" / "bigramlm"), "--help"]).returncode == 0
    return {"mib": size, "packages": packages, "seconds": round(took, 1), "cli_runs": cli}


def resolve(python: str, src: Path, where: Path) -> dict:
    venv = where / f"resolve-{Path(python).name}"
    made = run([python, "-m", "venv", str(venv)])
    if made.returncode != 0:
        return {"error": made.stderr.strip().splitlines()[-1:] or "no such interpreter"}
    report = where / f"{venv.name}.json"
    dry = run([str(venv / "bin" / "pip"), "install", "-q", "--dry-run", "--ignore-installed", "--report", str(report),
               "-c", str(ROOT / "constraints.txt"), f"{src}[support,serve]"])
    if dry.returncode != 0:
        return {"resolves": False, "error": dry.stderr.strip().splitlines()[-1:]}
    names = [i["metadata"]["name"] for i in json.loads(report.read_text())["install"]]
    version = run([python, "--version"]).stdout.strip()
    return {"python": version, "resolves": True, "packages": len(names),
            "cuda_packages": sum(n.startswith("nvidia") for n in names)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", default="python3.11", help="the interpreter to install with (default python3.11)")
    p.add_argument("--resolve", action="append", default=[], metavar="PYTHON",
                   help="another interpreter whose full install is only resolved (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        src = source_copy(where)
        sizes = {name: measure(args.python, src, extra, where) for name, extra in EXTRAS.items()}
        resolved = {python: resolve(python, src, where) for python in args.resolve}
    report = {"python": args.python, "installs": sizes, "resolved": resolved}
    if args.json:
        print(json.dumps(report))
        return
    for name, r in sizes.items():
        print(f"{name:14s} {r['mib']:6,d} MiB  {r['packages']:3d} packages  {r['seconds']:6.1f} s  "
              f"bigramlm --help: {'ok' if r['cli_runs'] else 'FAILS'}")
    for python, r in resolved.items():
        print(f"{python}: " + (f"{r['python']} resolves {r['packages']} packages, {r['cuda_packages']} of them nvidia-*"
                               if r.get("resolves") else f"does not resolve: {r.get('error')}"))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
