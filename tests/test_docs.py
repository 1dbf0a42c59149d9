"""The documentation site builds offline from the notebooks, equals the committed `docs/` byte for byte, carries the API
reference with parameter tables, renders math with the bundled KaTeX, searches from `file://`, and has no broken link
or anchor and nothing loaded from another host."""
import filecmp, subprocess, sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

def tool(name:str):
    spec = spec_from_file_location(name, REPO/'tools'/f'{name}.py'); mod = module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')/'site'
    r = subprocess.run([sys.executable, 'tools/build_docs.py', '--site-dir', str(out)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def test_site_builds_with_pages_and_api(site):
    pages = {p.name for p in site.glob('*.html')}
    for page in ['index.html', 'core.html', 'data.html', 'models.html', 'oracle.html', 'updates.html', 'updates_li.html', 'updates_lde.html', 'cli.html']:
        assert page in pages
    oracle = (site/'oracle.html').read_text()
    for api in ['Oracle.query', 'Oracle.update', 'QueryBudgetExceeded']: assert api in oracle
    import re
    text = re.sub(r'<[^>]+>', '', oracle)
    assert 'class QueryBudgetExceeded(RuntimeError)' in text and 'VAR_POSITIONAL' not in text  # an exception, not `(args:VAR_POSITIONAL, …)`
    assert 'load_dataset' in (site/'data.html').read_text()
    assert 'generate_updates' in (site/'updates.html').read_text() and 'LabelInferenceAttack' in (site/'updates_li.html').read_text()
    assert any((site/'assets').glob('*.png')), 'figures from the notebooks are missing'

def test_api_entries_have_parameter_tables_and_working_cross_references(site):
    updates = (site/'updates.html').read_text()
    assert '<th>Details</th>' in updates and 'id="generate_updates"' in updates
    assert '[`' not in updates, 'a cross-reference is left as raw Markdown'
    assert '<td>the model before the updates (target or shadow)</td>' in updates

def test_math_is_typeset_by_the_bundled_katex_and_search_runs_offline(site):
    assert 'class="arithmatex"' in (site/'updates.html').read_text()
    for asset in ['katex/katex.min.js', 'katex/katex.min.css', 'katex/auto-render.min.js', 'render_math.js']: assert (site/'assets'/asset).exists()
    assert any((site/'assets'/'katex'/'fonts').glob('*.woff2'))
    assert (site/'search'/'search_index.js').exists(), "Material's offline search index is missing"

def test_no_broken_link_or_anchor_and_nothing_from_another_host(site):
    assert tool('check_links').check_site(site) == []

def test_committed_docs_are_what_the_notebooks_build(site):
    "The docs freshness check: `docs/` must be rebuilt (`python tools/build_docs.py`) whenever a notebook changes."
    def files(root): return {p.relative_to(root) for p in root.rglob('*') if p.is_file()}
    built, committed = files(site), files(REPO/'docs')
    assert built == committed, f"docs/ lacks {sorted(map(str, built - committed))[:5]} and has extra {sorted(map(str, committed - built))[:5]}"
    stale = [str(p) for p in sorted(built) if not filecmp.cmp(site/p, REPO/'docs'/p, shallow=False)]
    assert not stale, f"docs/ is stale (run `python tools/build_docs.py`): {stale[:10]}"

def test_readme_is_generated_from_index():
    committed = (REPO/'README.md').read_text()
    assert tool('build_docs').readme_text() == committed, 'README.md is stale: run `python tools/build_docs.py --readme`'

def test_readme_links_open_the_notebooks():
    import re
    targets = re.findall(r'\]\(([^)#]+)', (REPO/'README.md').read_text())
    local = [t for t in targets if not t.startswith(('http://', 'https://', 'mailto:'))]
    assert local and all((REPO/t).exists() for t in local), [t for t in local if not (REPO/t).exists()]
