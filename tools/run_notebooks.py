"""Execute notebooks in place and keep their outputs, honouring nbdev's test flags.

`python tools/run_notebooks.py nbs/10_x.ipynb [--flags slow]` runs every cell except those flagged with a
`tst_flags` flag not named in `--flags` (and `#| eval: false` cells); skipped cells keep the outputs of the
last run that included them. `--keep TEXT` also skips the flagged cells whose source contains TEXT (to rerun a
notebook's new slow cells without its unchanged long ones; the kept cells must not feed the cells that run).
Run `nbdev_clean` afterwards. This is how the numbers in the notebooks are
produced: every table and figure there comes from a run of this command (or of the matching CLI command).
"""
import argparse, sys, time
from pathlib import Path

from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

TST_FLAGS = {'notest', 'slow', 'gpu'}

def cell_directives(source:str) -> dict:
    "The `#| key value` directives at the top of a cell."
    out = {}
    for line in source.splitlines():
        if not line.startswith('#|'): break
        key, *rest = line[2:].strip().replace(':', ' ', 1).split()
        out[key] = rest
    return out

def skipper(flags:set, keep:list=()):
    "A preproc for `CaptureShell.run_all` that skips flagged cells, as `nbdev_test` does, and flagged cells containing a `keep` text."
    def _skip(cell):
        if cell.cell_type != 'code': return True
        d = cell_directives(cell.source)
        if d.get('eval', [''])[0].lower() == 'false': return True
        if TST_FLAGS & d.keys() and any(k in cell.source for k in keep): return True
        return bool((TST_FLAGS - flags) & d.keys())
    return _skip

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('notebooks', nargs='+')
    p.add_argument('--flags', default='', help='space-separated flags whose cells also run, e.g. "slow"')
    p.add_argument('--keep', action='append', default=[], help='skip the flagged cells whose source contains this text (repeatable)')
    args = p.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for nb in map(Path, args.notebooks):
        t = time.time()
        with working_directory(nb.parent.resolve()):  # as nbdev_test runs them: relative paths start at the notebook
            CaptureShell(nb.name).execute(nb.name, nb.name, exc_stop=True, preproc=skipper(set(args.flags.split()), args.keep))
        print(f"{nb}: {time.time()-t:.0f} s")
