"""Build the documentation site offline, without Quarto.

Stage 1 is nbdev's own: `nbdev.serve.proc_nbs` processes the notebooks into `_proc/` (front matter from
each notebook's title, API docs rendered by `show_doc`, hidden and exported cells dropped, as `nbdev_docs`
does). Stage 2 turns each processed notebook into a Markdown page (outputs, tables and figures kept).
Stage 3 renders the pages with MkDocs Material into a static site that makes no request to any other host:
math is typeset by KaTeX, search runs from `file://` (Material's offline plugin, with the iframe-worker shim
it would otherwise load from unpkg.com), no web fonts. KaTeX and the shim are pinned npm packages, fetched
once into `.cache/` and checked against the registry's digests on every build. The
same notebooks give the same site byte for byte (the docs tests rebuild it and compare it with `docs/`).

Usage: `python tools/build_docs.py [--site-dir docs]`; open `docs/index.html` in a browser, or serve it with
`python -m http.server -d docs`. Users with Quarto can run `nbdev_docs` instead.
"""
import argparse, base64, dataclasses, hashlib, importlib, inspect, json, os, re, shutil, subprocess, sys, tarfile, tempfile, textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT/'_site_src'
PAGES = SRC/'pages'

NPM = {'katex': ('0.19.1', 'sha512-jG8uKntjSEcm2EpQOh0XturpPuuC9r3Sq5HLHdsFdWZT27E672SF19QEi+of0/YeOy15lDgRhKvr5614uRrEfA=='),
       'iframe-worker': ('1.0.4', 'sha512-roeaaI+Lg1LJNfgpCjoRe/+WzEjy9+Z08LoEvu85MCPbBjwm+qXz8Ag5U05lHa6V1CysZyGzE0SOkAtSUA5q7Q==')}  # version, npm digest
KATEX_FILES = ('dist/katex.min.js', 'dist/katex.min.css', 'dist/contrib/auto-render.min.js')

def npm_tarball(name:str) -> Path:
    "A pinned package of `NPM`: fetched once from the npm registry into `.cache/`, verified against its published digest on every build."
    import urllib.request
    version, integrity = NPM[name]
    path, url = ROOT/'.cache'/f'{name}-{version}.tgz', f'https://registry.npmjs.org/{name}/-/{name}-{version}.tgz'
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        try: data = urllib.request.urlopen(url, timeout=60).read()
        except OSError as e: sys.exit(f"the docs need {name} {version} and could not fetch it ({e}): save {url} as {path}")
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp: tmp.write(data)  # a cut download never takes the cache's name
        os.replace(tmp.name, path)
    digest = 'sha512-' + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
    if digest != integrity: sys.exit(f"{path} is not {name} {version} as the npm registry published it: delete it and build again")
    return path

def install_npm_assets(assets:Path):
    "Into the site's assets: KaTeX's script, style sheet, auto-render extension and WOFF2 fonts (the math), and iframe-worker's shim (search from `file://`)."
    with tarfile.open(npm_tarball('katex')) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix('package/')
            if member.isfile() and (name in KATEX_FILES or (name.startswith('dist/fonts/') and name.endswith('.woff2'))):
                target = assets/'katex'/name.removeprefix('dist/').removeprefix('contrib/')
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    with tarfile.open(npm_tarball('iframe-worker')) as tar:
        (assets/'iframe-worker').mkdir(parents=True, exist_ok=True)
        (assets/'iframe-worker'/'shim.js').write_bytes(tar.extractfile('package/shim/index.js').read())

def directives(source:str):
    "Quarto/nbdev `#| key: value` directives at the top of a cell, and the source without them."
    opts, lines = {}, source.splitlines()
    while lines and lines[0].startswith('#|'):
        key, _, val = lines.pop(0)[2:].partition(':')
        opts[key.strip()] = val.strip() or True
    return opts, '\n'.join(lines).strip('\n')

def front_matter(source:str) -> dict:
    "Title and description from a processed notebook's YAML front matter."
    import yaml
    return yaml.safe_load(source.strip().strip('-')) or {}

SHOW_DOC = re.compile(r'^---\s*\n+(?P<source>\[source\]\([^)]*/(?P<path>updates_leak/[\w/]+)\.py#L\d+\)\{[^}]*\})\s*\n+'
                      r'(?P<level>#{2,5}) (?P<name>[\w.]+)\s*\n+```python\n.*?\n```\s*\n?(?P<rest>.*)$', re.S)

def api_object(module_path:str, name:str):
    "The object a `show_doc` entry documents: `name` (perhaps `Class.method`) in the module at `module_path`."
    obj = importlib.import_module(module_path.replace('/', '.'))
    for part in name.split('.'): obj = getattr(obj, part)
    return obj

def annotation_text(anno) -> str:
    "A type annotation as a reader writes it."
    if anno in (None, inspect.Parameter.empty, type(None)): return ''  # `NoneType`: inferred from a `None` default, says nothing
    return anno if isinstance(anno, str) else getattr(anno, '__name__', str(anno))

def value_text(value) -> str:
    "A default value as code: a function or class by its name (its `repr` holds a memory address, different on every build)."
    return value.__qualname__ if callable(value) and hasattr(value, '__qualname__') else repr(value)

def default_text(value, limit:int=40) -> str:
    "A default value, shortened in the signature when it is long (the table gives it in full)."
    text = value_text(value)
    return text if len(text) <= limit else f"{type(value).__name__}(…)"

def default_factories(obj) -> dict:
    "A dataclass's fields that default to a factory's value, and the factory's name (what `<factory>` stands for)."
    if not (inspect.isclass(obj) and dataclasses.is_dataclass(obj)): return {}
    return {f.name: f.default_factory.__name__ for f in dataclasses.fields(obj) if f.default_factory is not dataclasses.MISSING}

def signature_text(name:str, obj) -> str:
    "One readable signature, wrapped at 88 columns (the width of a page): parameters and defaults (their types are in the table)."
    if inspect.isclass(obj) and issubclass(obj, BaseException) and '__init__' not in vars(obj):
        return f"class {name}({', '.join(b.__name__ for b in obj.__bases__)})"
    sig, factories = inspect.signature(obj), default_factories(obj)
    params = []
    for p in sig.parameters.values():
        if p.name == 'self': continue
        star = {p.VAR_POSITIONAL: '*', p.VAR_KEYWORD: '**'}.get(p.kind, '')
        default = f'{factories[p.name]}()' if p.name in factories else None if p.default is p.empty else default_text(p.default)
        params.append(star + p.name + ('' if default is None else '=' + default))
    text = ('class ' if inspect.isclass(obj) else '') + f"{name.split('.')[-1]}({', '.join(params)})"
    ret = annotation_text(sig.return_annotation)
    if ret and ret != 'None' and not inspect.isclass(obj): text += f"\x01->\x01{ret}"  # kept on one line with its arrow
    return textwrap.fill(text, 88, subsequent_indent='    ', break_long_words=False, break_on_hyphens=False).replace('\x01', ' ')

def table_cell(text:str) -> str:
    "Text for one cell of a Markdown table: pipes escaped outside code spans (inside them the table already ignores them)."
    parts = text.replace('\n', ' ').split('`')
    return '`'.join(p if i % 2 else p.replace('|', '\\|') for i, p in enumerate(parts))

def parameter_table(obj, linkify) -> str:
    "nbdev's parameter table from the docments comments: name, type, default, meaning (and what comes back)."
    from fastcore.docments import docments
    if inspect.isclass(obj) and issubclass(obj, BaseException) and '__init__' not in vars(obj): return ''
    try: docs = docments(obj, full=True)
    except (TypeError, ValueError): return ''
    factories, rows = default_factories(obj), []
    for name, d in docs.items():
        if name in ('self', 'return'): continue
        if name in factories: default = f"`{factories[name]}()`"  # not `<factory>`
        else: default = '' if d['default'] is inspect.Parameter.empty else table_cell(f"`{value_text(d['default'])}`")
        anno = annotation_text(d['anno'])
        rows.append(f"| `{name}` | {table_cell(f'`{anno}`') if anno else ''} | {default} | {table_cell(linkify(d['docment']) if d['docment'] else '')} |")
    ret = docs.get('return') or {}
    if ret.get('docment') or annotation_text(ret.get('anno')) not in ('', 'None'):
        anno = annotation_text(ret.get('anno'))
        rows.append(f"| **returns** | {table_cell(f'`{anno}`') if anno else ''} | | {table_cell(linkify(ret['docment']) if ret.get('docment') else '')} |")
    if not rows: return ''
    return '| | Type | Default | Details |\n|---|---|---|---|\n' + '\n'.join(rows)

def docstring_markdown(obj, rendered:str) -> str:
    "The docstring as the page shows it: its whole first paragraph in italics (nbdev italicises its first line), then the rest."
    doc = inspect.getdoc(obj)
    if not doc or not rendered.startswith('*'): return rendered
    first, *more = doc.split('\n\n')
    return '\n\n'.join([f"*{' '.join(first.split())}*", *more])

def api_markdown(text:str, linkify) -> str:
    "A `show_doc` entry as nbdev renders it on its own sites: source link, a readable signature, the docstring, a parameter table."
    m = SHOW_DOC.match(text.strip())
    if m is None: return text
    try: obj = api_object(m['path'], m['name'])
    except (ImportError, AttributeError): return text
    heading = f"{m['level']} {m['name']} {{#{m['name'].lower()}}}"  # the anchor nbdev's cross-references point to
    parts = [m['source'], heading, '```python\n' + signature_text(m['name'], obj) + '\n```', docstring_markdown(obj, m['rest'].strip()), parameter_table(obj, linkify)]
    return '\n\n'.join(p for p in parts if p)

RULE = re.compile(r'^-+(  +-+)*$')

def text_table(lines:list) -> str:
    "A table printed by `core.format_table` (header, rule of dashes, rows) as a Markdown table: its columns are where the dashes are."
    spans = [m.span() for m in re.finditer(r'-+', lines[1])]
    def cells(line): return [line[a:(spans[i + 1][0] if i + 1 < len(spans) else None)].strip() for i, (a, _) in enumerate(spans)]
    rows = [cells(lines[0]), ['---'] * len(spans)] + [cells(l) for l in lines[2:]]
    return '\n'.join('| ' + ' | '.join(c.replace('|', '\\|') for c in row) + ' |' for row in rows)

def stream_markdown(text:str) -> str:
    "Printed text as Markdown: the tables `format_table` prints become real tables (nothing cut off on the right); the rest stays fenced."
    lines, parts, plain, i = text.rstrip().splitlines(), [], [], 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and RULE.match(lines[i + 1]):
            end = i + 2
            while end < len(lines) and lines[end].strip(): end += 1
            if any(l.strip() for l in plain): parts.append('```text\n' + '\n'.join(plain).strip('\n') + '\n```')
            plain = []
            parts.append(text_table(lines[i:end])); i = end
        else: plain.append(lines[i]); i += 1
    if any(l.strip() for l in plain): parts.append('```text\n' + '\n'.join(plain).strip('\n') + '\n```')
    return '\n\n'.join(parts)

def output_markdown(out:dict, stem:str, n:int, assets:Path, linkify) -> str:
    "One cell output as Markdown: figures saved as files, Markdown and HTML inlined, text fenced."
    kind = out['output_type']
    if kind == 'stream': return stream_markdown(re.sub(r'[^\s"\']*/site-packages/', '', ''.join(out['text'])))  # no local paths in warnings
    if kind == 'error': return '```text\n' + '\n'.join(out.get('traceback', [out.get('evalue', '')])) + '\n```'
    data = out.get('data', {})
    if 'image/png' in data and assets is not None:
        name = f'{stem}_{n}.png'
        (assets/name).write_bytes(base64.b64decode(''.join(data['image/png'])))
        return f'![](assets/{name})'
    if 'text/markdown' in data: return api_markdown(''.join(data['text/markdown']), linkify)
    if 'text/html' in data: return '<div class="nb-output">\n' + ''.join(data['text/html']) + '\n</div>'
    if 'text/plain' in data: return '```text\n' + ''.join(data['text/plain']).rstrip() + '\n```'
    return ''

def site_url() -> str:
    "The docs' public base URL from settings.ini; links to it become relative in the offline site."
    from configparser import ConfigParser
    cfg = ConfigParser(); cfg.read(ROOT/'settings.ini')
    return cfg.get('DEFAULT', 'doc_host') + cfg.get('DEFAULT', 'doc_baseurl') + '/'

def notebook_markdown(nb_path:Path, assets:Path) -> tuple:
    "A processed notebook as (title, Markdown page)."
    from nbdev.doclinks import NbdevLookup
    nb, linkify = json.loads(nb_path.read_text()), NbdevLookup().linkify
    parts, title, n = [], nb_path.stem, 0
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] == 'raw' and src.startswith('---'):
            meta = front_matter(src)
            title = meta.get('title', title)
            parts.append(f"# {title}\n\n" + (f"> {meta['description']}\n" if meta.get('description') else ''))
        elif cell['cell_type'] == 'markdown':
            if 'AUTOGENERATED' not in src: parts.append(src)
        elif cell['cell_type'] == 'code':
            opts, code = directives(src)
            if opts.get('include') == 'false' or opts.get('hide'): continue
            if opts.get('echo') != 'false' and code: parts.append('```python\n' + code + '\n```')
            for out in cell.get('outputs', []):
                n += 1
                parts.append(output_markdown(out, nb_path.stem, n, assets, linkify))
    return title, '\n\n'.join(p for p in parts if p).replace(site_url(), '') + '\n'

def page_name(stem:str) -> str: return 'index.md' if stem == 'index' else re.sub(r'^\d+[a-z]?_', '', stem) + '.md'

def build(site_dir:Path, proc:bool=True) -> Path:
    "Process the notebooks, write Markdown pages and render them with MkDocs; returns the site folder."
    if proc:
        from nbdev.serve import proc_nbs
        proc_nbs(n_workers=0)
    shutil.rmtree(SRC, ignore_errors=True)
    (PAGES/'assets').mkdir(parents=True)
    nav = []
    for nb in sorted((ROOT/'_proc').glob('*.ipynb'), key=lambda p: (p.stem != 'index', p.stem)):
        title, text = notebook_markdown(nb, PAGES/'assets')
        (PAGES/page_name(nb.stem)).write_text(text)
        nav.append({title if nb.stem != 'index' else 'Home': page_name(nb.stem)})
    shutil.copy(ROOT/'nbs'/'styles.css', PAGES/'styles.css')
    shutil.copy(ROOT/'tools'/'render_math.js', PAGES/'assets'/'render_math.js')
    install_npm_assets(PAGES/'assets')
    config = (ROOT/'mkdocs.yml').read_text() + '\nnav:\n' + ''.join(f"  - {json.dumps(k)}: {v}\n" for d in nav for k, v in d.items())
    (SRC/'mkdocs.yml').write_text(config.replace('docs_dir: _site_src', 'docs_dir: pages'))
    subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--quiet', '-f', str(SRC/'mkdocs.yml'), '-d', str(Path(site_dir).resolve())],
                   check=True, env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    for name in ('sitemap.xml', 'sitemap.xml.gz'): (Path(site_dir)/name).unlink(missing_ok=True)  # dated on every build, and of no use offline
    return Path(site_dir)

def readme_links(text:str) -> str:
    "Links to docs pages, pointed at the notebooks they are built from: those work on the repository page and in a clone."
    notebooks = {page_name(nb.stem)[:-3] + '.html': f'nbs/{nb.name}' for nb in (ROOT/'nbs').glob('*.ipynb') if nb.stem != 'index'}
    return re.sub(r'\]\((\w+\.html)(#[^)]*)?\)', lambda m: f"]({notebooks[m[1]]})" if m[1] in notebooks else m[0], text)

def readme_text() -> str:
    "README.md's text: `nbs/index.ipynb` as `nbdev_readme` would write it without Quarto, its page links sent to the notebooks."
    _, text = notebook_markdown(ROOT/'nbs'/'index.ipynb', assets=None)
    return readme_links(text)

def write_readme() -> Path:
    "Write README.md from `nbs/index.ipynb`, atomically and only if it changed, so a reader never sees it half written."
    path, text = ROOT/'README.md', readme_text()
    if not path.exists() or path.read_text() != text:
        with tempfile.NamedTemporaryFile('w', dir=ROOT, delete=False) as tmp: tmp.write(text)
        os.replace(tmp.name, path)
    return path

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--site-dir', default=str(ROOT/'docs'), help='where to write the site (default: docs/)')
    p.add_argument('--no-proc', action='store_true', help='reuse _proc/ instead of processing the notebooks again')
    p.add_argument('--readme', action='store_true', help='only regenerate README.md from nbs/index.ipynb')
    p.add_argument('--help-index', action='store_true',
                   help="only regenerate the command line's stored help (updates_leak/data_files/cli_help.json)")
    args = p.parse_args()
    if args.help_index:
        from updates_leak.cli import write_help_index
        sys.exit(print(f"wrote {write_help_index().relative_to(ROOT)}"))
    from filelock import FileLock
    with FileLock(str(ROOT/'.build_docs.lock')):  # builds share _proc/ and _site_src/: one at a time (the docs tests run several side by side)
        print(f"wrote {write_readme()}")
        if not args.readme: print(f"site written to {build(Path(args.site_dir), proc=not args.no_proc)}")
