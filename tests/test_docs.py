"""The documentation site builds offline from the notebooks and carries the API reference."""
import subprocess, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

def test_site_builds_with_pages_and_api(tmp_path):
    r = subprocess.run([sys.executable, 'tools/build_docs.py', '--site-dir', str(tmp_path/'site')], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    site = tmp_path/'site'
    pages = {p.name for p in site.glob('*.html')}
    for page in ['index.html', 'core.html', 'data.html', 'models.html', 'oracle.html', 'updates.html', 'updates_li.html', 'updates_lde.html', 'cli.html']:
        assert page in pages
    oracle = (site/'oracle.html').read_text()
    for api in ['Oracle.query', 'Oracle.update', 'QueryBudgetExceeded']: assert api in oracle
    assert 'load_dataset' in (site/'data.html').read_text()
    assert 'generate_updates' in (site/'updates.html').read_text() and 'LabelInferenceAttack' in (site/'updates_li.html').read_text()
    assert any((site/'assets').glob('*.png')), 'figures from the notebooks are missing'

def test_readme_is_generated_from_index():
    committed = (REPO/'README.md').read_text()
    from importlib.util import spec_from_file_location, module_from_spec
    spec = spec_from_file_location('build_docs', REPO/'tools'/'build_docs.py'); mod = module_from_spec(spec); spec.loader.exec_module(mod)
    _, text = mod.notebook_markdown(REPO/'nbs'/'index.ipynb', assets=None)
    assert text == committed, 'README.md is stale: run `python tools/build_docs.py --readme`'
